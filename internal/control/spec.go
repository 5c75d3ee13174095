package control

// The grammar of the port specs that Op.Spec carries, as pasta(1) -t takes
// them, in the markup of gopasta's man pages (internal/cmdline): pasta's
// and pesto's pages share it.

// SpecGrammar describes port specs and the rules they make.
const SpecGrammar = `The options -t, -u, -T and -U take a SPEC: none, or a list of
ports, optionally restricted to an address and an interface to listen on.

none
  Forward no ports.

[ADDR[%IF]/]LIST
  Forward the ports of LIST, listening only on the host address ADDR (an
  IPv4 or IPv6 address, in brackets or not) or only on the interface IF
  (SO_BINDTODEVICE, Linux 5.7 or later), or both. LIST is a
  comma-separated list of the items below.

PORT[-LAST][:[TOADDR/]TARGET[-TARGET_LAST]]
  Listen on PORT (or PORT to LAST) and forward to the same port, or to
  TARGET (and the ports after it) on the other side: at its own address
  (for -T and -U, the host's loopback), or at TOADDR, an IPv4 or IPv6
  address there, in brackets or not. A target address needs a listening
  address of its family, 0.0.0.0/ or [::]/ for any.

PORT[-LAST]:TOADDR
  The same ports, at TOADDR.

~PORT[-LAST]
  Exclude PORT (or PORT to LAST) from what the list forwards.

all[:TOADDR]
  Every port that is not in the kernel's ephemeral range
  (/proc/sys/net/ipv4/ip_local_port_range): what a list without ports, or
  with exclusions only, forwards. Ports that can't be bound are then
  skipped, unless none can be. all can't be mixed with ports.

auto
  Forward the ports of the list (every non-ephemeral port if it lists
  none) only while their target port is bound on the other side: for -t
  and -u, in the namespace; for -T and -U, on the host. Once a second,
  pasta asks the other side's kernel for its listening TCP and bound UDP
  sockets (sock_diag(7); /proc/net/tcp, tcp6, udp and udp6 where the
  kernel has no sock_diag) and follows them.

Each item of a list is a forwarding rule of its own (cut in two where an
exclusion falls in it), which pesto(1) shows and can delete alone. Given
several times, an option's rules add up, but no two may forward the same
port for overlapping addresses (an address overlaps itself and the
wildcard address of its family; no address means every address).

Ports below 1024 need the sysctl net.ipv4.ip_unprivileged_port_start
lowered, or CAP_NET_BIND_SERVICE.`

// SpecExamples are examples of port specs.
const SpecExamples = `Examples:

-t 22
  The host's port 22 to the namespace's port 22.

-t 2222:22
  The host's port 2222 to the namespace's port 22.

-t 8000-8010,~8005
  Ports 8000 to 8010, except 8005.

-t 8000-8010:9000
  Ports 8000 to 8010 to the namespace's 9000 to 9010.

-t 127.0.0.1/8080
  Port 8080 of the host's loopback only.

-t 0.0.0.0/8080:10.89.0.2/80
  Port 8080 of the host's IPv4 addresses to port 80 of 10.89.0.2, an
  address behind the namespace (a container on a bridge there, as Podman
  asks for it).

-t %eth0/80
  Port 80 of any address, for connections through eth0 only.

-t ~1-1023
  Every non-ephemeral port from 1024 up.

-t ::1/all
  Every non-ephemeral port of the host's IPv6 loopback.

-t 8000-8010,auto
  Ports 8000 to 8010, each while the namespace listens on it.`
