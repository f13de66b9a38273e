"""Ingest: what other systems logged (load-balancer, flow and server logs) turned into
client populations and failure summaries, and what was captured on the wire (pcap,
pcapng, VXLAN-mirrored traffic) turned into replayable client profiles."""
