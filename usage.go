package main

// usageText is the --help output.
func usageText() string {
	return `Usage: pasta [OPTION]... [COMMAND [ARG]...]
       pasta [OPTION]... PID
       pasta [OPTION]... --netns [PATH|NAME]

Connect a network namespace to the host network through a tap device,
translating its traffic to ordinary sockets. Without PID or --netns, run
COMMAND (by default the user's shell) in new user and network namespaces.

Logging and process control:
  -d, --debug                 verbose output, not to the system logger
      --trace                 also show every packet (implies --debug)
  -q, --quiet                 print no informational messages
  -f, --foreground            stay in the foreground instead of daemonizing
  -e, --stderr                no effect, kept for compatibility
  -l, --log-file PATH         write log messages to PATH
      --log-size SIZE         maximum log file size in bytes (default 1048576)
      --runas UID[:GID]|LOGIN[:GROUP]
                              user (and group) to switch to when started as root
  -h, --help                  show this help and exit
      --version               show the version and exit
  -p, --pcap FILE             capture namespace-side packets to FILE (pcap)
  -P, --pid FILE              write the process ID to FILE once ready

Addresses and interfaces:
  -m, --mtu MTU               MTU to advertise (68-65520, 0: none)
  -a, --address ADDR[/LEN]    IPv4 or IPv6 address for the namespace
  -n, --netmask MASK          IPv4 netmask, dotted or as a prefix length
  -M, --mac-addr ADDR         our MAC address as seen from the namespace
  -g, --gateway ADDR          IPv4 or IPv6 default gateway for the namespace
  -i, --interface NAME        host interface to copy addresses and routes from
  -o, --outbound ADDR         source address for outbound IPv4 or IPv6 sockets
      --outbound-if4 NAME     host interface for outbound IPv4 traffic
      --outbound-if6 NAME     host interface for outbound IPv6 traffic
  -D, --dns ADDR              nameserver to advertise (repeatable; none: no DNS)
      --dns-forward ADDR      address in the namespace redirected to --dns-host
      --dns-host ADDR         host-side nameserver for --dns-forward
  -S, --search LIST           space-separated search domains (none: no list)
      --no-dhcp-dns           don't advertise nameservers
      --dhcp-dns              advertise nameservers via DHCP, DHCPv6 and NDP
      --no-dhcp-search        don't advertise the search list
      --dhcp-search           advertise the search list via DHCP, DHCPv6 and NDP
  -H, --hostname NAME         hostname to send via DHCP
      --fqdn NAME             fully qualified name to send via DHCP and DHCPv6

Protocols:
      --no-tcp                drop all TCP traffic
      --no-udp                drop all UDP traffic
      --no-icmp               drop ICMP and ICMPv6 echo requests
      --no-dhcp               don't answer DHCP requests
      --no-ndp                don't answer NDP messages
      --no-dhcpv6             don't answer DHCPv6 requests
      --no-ra                 don't send router advertisements
      --freebind              allow binding forwarded ports to absent addresses
  -4, --ipv4-only             use IPv4 only
  -6, --ipv6-only             use IPv6 only

Address mapping:
      --map-host-loopback ADDR
                              namespace traffic to ADDR reaches the host's
                              loopback (none: map nothing)
      --no-map-gw             don't map the gateway address to the host
      --map-gw                map the gateway address to the host (default)
      --map-guest-addr ADDR   namespace traffic to ADDR reaches the host's
                              address the namespace uses (none: map nothing)
      --host-lo-to-ns-lo      traffic from the host's loopback arrives on the
                              namespace's loopback
      --no-splice             don't bypass the tap device for local traffic

Port forwarding (SPEC: none, auto, all, or [ADDR[%IF]/]LIST, where LIST is
comma-separated PORT[-PORT][:TARGET[-TARGET]] and ~PORT[-PORT] exclusions):
  -t, --tcp-ports SPEC        TCP ports to forward into the namespace
  -u, --udp-ports SPEC        UDP ports to forward into the namespace
  -T, --tcp-ns SPEC           TCP ports to forward out to the host
  -U, --udp-ns SPEC           UDP ports to forward out to the host
  Each defaults to auto, except that UDP follows an explicit TCP port list.

Namespaces:
  -I, --ns-ifname NAME        name of the tap interface in the namespace
      --userns PATH           user namespace to join
      --netns PATH|NAME       network namespace to join (NAME: /run/netns/NAME)
      --netns-only            join the network namespace only, no user namespace
      --no-netns-quit         keep running after the namespace goes away
      --config-net            set up addresses, routes and link in the namespace
      --no-copy-routes        only set up the default route (deprecated)
      --no-copy-addrs         only set up one address (deprecated)
      --ns-mac-addr ADDR      MAC address of the tap interface in the namespace

passt-only options (refused): -s, --socket, --socket-path, -F, --fd,
-1, --one-off, --vhost-user, --print-capabilities, --repair-path.
`
}
