"""Project-owned test helpers (stdlib only): pcap I/O, RTP stream analysis, test media."""
