"""The local engine: this process calls the backend, one batch after another (the backend's own
batching and concurrency inside a batch)."""


class LocalEngine:
    name = "local"

    def batch_size(self, client) -> int:
        return client.batch_size_for(client.backend)

    def close(self):
        pass

    def answer(self, client, kind: str, batches):
        """Yield the stored rows of each batch as the client's backend answers it."""
        for batch in batches:
            yield client.call_batch(kind, batch)
