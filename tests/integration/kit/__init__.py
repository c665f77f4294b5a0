"""The integration tests' shared toolkit:

  kit.yaml_emit  dicts and lists to block-style YAML, every string quoted
  kit.config     configuration builders (listener, backend, server, config)
                 and a relay started on the file they make
  kit.tls        a certificate-blind TLS context and a real ClientHello
  kit.stats      the stats socket and the access log, read back

Peers (raw listeners, nginx, HAProxy, load helpers, namespaces) are in
peers/; process and port plumbing in harness.py."""
