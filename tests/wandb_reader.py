"""Read a W&B offline run file (`run-<id>.wandb`) back: wandb keeps no Python reader for it, so
this follows its format, a LevelDB-style log of protobuf `Record`s in 32 KiB blocks."""

import struct

BLOCK, HEADER = 32768, 7


def records(path):
    """Every record of the file, parsed with wandb's own protobuf classes."""
    from wandb.proto import wandb_internal_pb2 as pb
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        buf += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def read_run(path) -> dict:
    """{"config": {...}, "history": [{key: value}], "summary": {...}, "files": [...]}"""
    import json
    out = {"config": {}, "history": [], "summary": {}, "files": []}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["config"].update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "files":
            out["files"] += [f.path for f in r.files.files]
    return out


def _key(item) -> str:
    """An item's name: `key`, or its path (`nested_key`) for names wandb splits at "/"."""
    return item.key or "/".join(item.nested_key)
