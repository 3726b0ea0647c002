"""The emulated QKD/NFV test-bed (the lab): optical switch, RESTCONF, QKD links, KMEs, VIM."""
