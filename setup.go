package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// applyForwardDefaults turns forwarding options not given into pasta's
// default, "auto" (pasta(1), -t, -u, -T, -U).
func applyForwardDefaults(cfg *config) {
	for _, s := range []*fwdSpec{&cfg.tcpFwd, &cfg.udpFwd, &cfg.tcpNsFwd, &cfg.udpNsFwd} {
		if !s.given {
			*s, _ = parsePortSpec("auto", true)
		}
	}
}

// setup does everything before the event loop: host discovery, the network
// namespace and its tap, namespace configuration, and the loop's state.
func setup(cfg *config) (*ctx, error) {
	if err := configureLogging(cfg); err != nil {
		return nil, err
	}
	applyForwardDefaults(cfg)
	raiseFileLimit()
	ip4, ip6, err := resolveHostConfig(cfg)
	if err != nil {
		return nil, err
	}
	ns, nsPath, err := targetNetns(cfg)
	if err != nil {
		return nil, err
	}
	ifname, dev, err := openNamespaceTap(cfg, ns, &ip4, &ip6)
	if err != nil {
		return nil, err
	}
	c, err := newCtx(cfg, dev)
	if err != nil {
		return nil, err
	}
	c.ip4, c.ip6, c.ns = ip4, ip6, ns
	if dev != nil {
		c.setupAutoconfig()
	}
	if err := c.configureNamespace(ifname); err != nil {
		return nil, err
	}
	if cfg.pcapFile != "" {
		if c.pcap, err = openPcap(cfg.pcapFile); err != nil {
			return nil, err
		}
	}
	if err := c.setupLifecycle(nsPath); err != nil {
		return nil, err
	}
	if err := c.setupAutoForward(); err != nil {
		return nil, err
	}
	if err := c.applyRuleOps(c.initialRules()); err != nil {
		return nil, err
	}
	if err := c.setupControl(cfg.confPath); err != nil {
		return nil, err
	}
	c.checkPingSockets()
	c.logConfiguration(ifname)
	return c, nil
}

// openNamespaceTap makes the tap device in the namespace and returns its
// name, or nothing with --splice-only (pasta(1)): then only spliced,
// local traffic is forwarded.
func openNamespaceTap(cfg *config, ns *nsThread, ip4, ip6 *ipConf) (string, frameIO, error) {
	if cfg.spliceOnly {
		return "", nil, nil
	}
	ifname := tapName(cfg, ip4, ip6)
	var tap *tapIO
	if err := ns.do(func() (err error) { tap, err = openTap(ifname); return err }); err != nil {
		return "", nil, err
	}
	return ifname, tap, nil
}

// resolveHostConfig reads the host's upstream configuration for both IP
// versions. With --splice-only there is none to read: the namespace gets
// no addresses, and local traffic needs none.
func resolveHostConfig(cfg *config) (ipConf, ipConf, error) {
	if cfg.spliceOnly {
		return ipConf{enabled: !cfg.ipv6Only}, ipConf{enabled: !cfg.ipv4Only}, nil
	}
	conn, err := netlinkConn()
	if err != nil {
		return ipConf{}, ipConf{}, err
	}
	defer conn.Close()
	ip4, err := resolveIPConf(cfg, conn, unix.AF_INET)
	if err != nil {
		return ip4, ipConf{}, err
	}
	ip6, err := resolveIPConf(cfg, conn, unix.AF_INET6)
	if err != nil {
		return ip4, ip6, err
	}
	if !ip4.enabled && !ip6.enabled {
		return ip4, ip6, fmt.Errorf("neither IPv4 nor IPv6 is usable")
	}
	return ip4, ip6, nil
}

// targetNetns creates the namespace for a command, or joins the one given
// by PID or --netns, and returns its namespace thread and file path.
func targetNetns(cfg *config) (*nsThread, string, error) {
	if commandMode(cfg) {
		ns, err := newNetnsThread()
		return ns, "", err
	}
	path := netnsTargetPath(cfg)
	ns, err := joinNetnsThread(path)
	return ns, path, err
}

// tapName is -I, else the host's upstream interface name (IPv4 first),
// else tap0.
func tapName(cfg *config, ip4, ip6 *ipConf) string {
	for _, n := range []string{cfg.nsIfname, ip4.hostIf, ip6.hostIf} {
		if n != "" {
			return n
		}
	}
	return tapNameDefault
}

// configureNamespace brings up lo and, with --config-net, configures the
// tap (if there is one) like the host's interface.
func (c *ctx) configureNamespace(ifname string) error {
	lc := nsLinkConfig{mac: net.HardwareAddr(c.cfg.nsMAC)}
	if c.cfg.configNet {
		lc.mtu = c.mtu
		lc.up = true
		lc.ipv6 = c.ip6.enabled
		for _, ic := range []*ipConf{&c.ip4, &c.ip6} {
			if ic.enabled {
				lc.addrs = append(lc.addrs, ic.addrs...)
				lc.routes = append(lc.routes, ic.routes...)
			}
		}
	}
	err := c.ns.do(func() error { return configureNamespace(ifname, &lc) })
	if err != nil {
		return fmt.Errorf("configuring the namespace: %w", err)
	}
	// Inbound traffic from link-local sources goes to the guest's
	// link-local address (pasta(1), NOTES): this one until another is seen.
	c.ip6.observe(lc.ll)
	if commandMode(c.cfg) {
		_ = c.ns.do(openLowPorts) // it warns itself
	}
	return nil
}

// unprivilegedPortStart is the sysctl below which binding a port needs
// CAP_NET_BIND_SERVICE, per network namespace (ip-sysctl.rst).
const unprivilegedPortStart = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

// openLowPorts lets anyone bind any port in the namespace pasta created for
// its command, which is where pasta binds the host's ports found by -T and
// -U auto: confined, pasta has no capability left to bind those below 1024
// (C pasta keeps CAP_NET_BIND_SERVICE for that instead). It runs on the
// namespace thread: /proc/sys/net shows the opener's namespace.
func openLowPorts() error {
	if err := os.WriteFile(unprivilegedPortStart, []byte("0"), 0); err != nil {
		warnf("can't let pasta bind ports below 1024 in the namespace once confined: %v", err)
	}
	return nil
}

// checkPingSockets warns at start when ping sockets are refused, so that a
// failing ping in the namespace has an explanation.
func (c *ctx) checkPingSockets() {
	if c.cfg.noICMP || c.dev == nil { // no guest frames, no echo requests
		return
	}
	for _, fam := range []struct {
		on            bool
		family, proto int
	}{{c.ip4.enabled, unix.AF_INET, unix.IPPROTO_ICMP}, {c.ip6.enabled, unix.AF_INET6, unix.IPPROTO_ICMPV6}} {
		if !fam.on {
			continue
		}
		fd, err := unix.Socket(fam.family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, fam.proto)
		if err != nil {
			c.warnPing(err)
			return
		}
		unix.Close(fd)
	}
}

// logConfiguration prints what the namespace gets, like C pasta does.
func (c *ctx) logConfiguration(ifname string) {
	if c.cfg.spliceOnly {
		infof("No tap device (--splice-only): forwarding loopback traffic only")
		return
	}
	outIf := firstNonEmpty(c.ip4.hostIf, c.ip6.hostIf)
	if outIf == "" {
		outIf = "none"
	}
	infof("Outbound interface: %s, namespace interface: %s", outIf, ifname)
	for _, l := range []struct {
		name string
		ic   *ipConf
	}{{"IPv4", &c.ip4}, {"IPv6", &c.ip6}} {
		if l.ic.enabled {
			infof("%s: %s", l.name, l.ic.describe())
		}
	}
}

// describe says what the namespace gets for one IP version. Without a
// host interface to copy (pasta(1), NOTES, "Local mode for disconnected
// setups"), IPv6 has no address until the guest's link-local one is seen.
func (ic *ipConf) describe() string {
	local := ""
	if ic.hostIf == "" {
		local = " (local mode: no external interface as template)"
	}
	if !ic.addr.IsValid() {
		return fmt.Sprintf("no address, gateway %s%s", ic.gw, local)
	}
	if ic.addr.Is4() {
		return fmt.Sprintf("address %s/%d, gateway %s%s", ic.addr, ic.prefixLen, ic.gw, local)
	}
	return fmt.Sprintf("address %s, gateway %s%s", ic.addr, ic.gw, local)
}
