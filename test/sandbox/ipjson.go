package sandbox

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Link is one entry of `ip -j [-d] link show` or `ip -j addr show`.
type Link struct {
	Ifindex   int        `json:"ifindex"`
	Ifname    string     `json:"ifname"`
	Flags     []string   `json:"flags"`
	MTU       int        `json:"mtu"`
	Operstate string     `json:"operstate"`
	LinkType  string     `json:"link_type"`
	Address   string     `json:"address"`
	AddrInfo  []AddrInfo `json:"addr_info"`
	LinkInfo  *LinkInfo  `json:"linkinfo"`
}

// LinkInfo is the "linkinfo" object of `ip -j -d link show`.
type LinkInfo struct {
	InfoKind string         `json:"info_kind"`
	InfoData map[string]any `json:"info_data"`
}

// AddrInfo is one address of `ip -j addr show`.
type AddrInfo struct {
	Family    string `json:"family"` // "inet" or "inet6"
	Local     string `json:"local"`
	Prefixlen int    `json:"prefixlen"`
	Scope     string `json:"scope"`
	Tentative bool   `json:"tentative"`
	Nodad     bool   `json:"nodad"`
}

// Route is one entry of `ip -j route show`.
type Route struct {
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol"`
	Scope    string   `json:"scope"`
	Prefsrc  string   `json:"prefsrc"`
	Metric   int      `json:"metric"`
	Flags    []string `json:"flags"`
}

// ParseLinks parses `ip -j link` or `ip -j addr` output.
func ParseLinks(s string) ([]Link, error) {
	var l []Link
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &l); err != nil {
		return nil, fmt.Errorf("parsing ip -j output: %v\n%s", err, s)
	}
	return l, nil
}

// ParseRoutes parses `ip -j route` output.
func ParseRoutes(s string) ([]Route, error) {
	var r []Route
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &r); err != nil {
		return nil, fmt.Errorf("parsing ip -j route output: %v\n%s", err, s)
	}
	return r, nil
}

// FindLink returns the link named name, or nil.
func FindLink(links []Link, name string) *Link {
	for i := range links {
		if links[i].Ifname == name {
			return &links[i]
		}
	}
	return nil
}

// HasFlag reports whether the link has flag f (e.g. "UP").
func (l *Link) HasFlag(f string) bool {
	for _, x := range l.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// Addr returns the address local on l, or nil.
func (l *Link) Addr(local string) *AddrInfo {
	for i := range l.AddrInfo {
		if l.AddrInfo[i].Local == local {
			return &l.AddrInfo[i]
		}
	}
	return nil
}

// DefaultRoute returns the first default route, or nil.
func DefaultRoute(routes []Route) *Route {
	for i := range routes {
		if routes[i].Dst == "default" {
			return &routes[i]
		}
	}
	return nil
}
