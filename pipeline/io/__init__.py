"""Input and output: movie readers, suite2p binaries, NWB."""
