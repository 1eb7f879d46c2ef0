"""Benchmarks of trained accuracies: the shipped NAS-Bench-201-on-digits mini-benchmark
(`nb201_digits`) and a reader for the user's own NAS-Bench-201 file (`nb201_api`)."""
