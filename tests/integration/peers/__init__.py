"""The peers the relay is tested against, by kind:

  peers.proxy_header  PROXY v1/v2 headers: encode, parse, read off a socket
  peers.wire          socket primitives (exact reads, connect from a source,
                      reset on close) and the JSON line a helper reports
  peers.backends      Python backends: a raw listener driven by hand, a plain
                      echo, and the echo and integrity backends (own process)
  peers.clients       Python clients: a streamer, and the integrity, steady,
                      churn and rate load clients (own process)
  peers.streams       the hashed random streams the integrity pair moves
  peers.daemons       nginx and HAProxy, behind the relay or in front of it
  peers.netns         network namespaces: one alone, or a LAN of hosts
  peers.impair        packet loss and delay between relay and backend
  peers.helper        starting the own-process peers (python3 -m peers NAME)"""
