"""What leaves cai: dataset files written as rows come, the dataset card, model cards and the
upload to the Hugging Face Hub."""
