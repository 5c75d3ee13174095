package main

import (
	"encoding/binary"
	"net/netip"
)

// Internet checksum (RFC 1071): the one's complement of the one's complement
// sum of 16-bit big-endian words. sumBytes accumulates 64 bits at a time into
// a 64-bit accumulator with end-around carry, which is equivalent (RFC 1071
// section 2(B), byte order independence and deferred carries).

// sumBytes adds b to the running sum acc (not yet folded).
func sumBytes(b []byte, acc uint64) uint64 {
	for len(b) >= 32 {
		acc = addCarry(acc, binary.BigEndian.Uint64(b[0:8]))
		acc = addCarry(acc, binary.BigEndian.Uint64(b[8:16]))
		acc = addCarry(acc, binary.BigEndian.Uint64(b[16:24]))
		acc = addCarry(acc, binary.BigEndian.Uint64(b[24:32]))
		b = b[32:]
	}
	for len(b) >= 8 {
		acc = addCarry(acc, binary.BigEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc = addCarry(acc, uint64(binary.BigEndian.Uint32(b)))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc = addCarry(acc, uint64(binary.BigEndian.Uint16(b)))
		b = b[2:]
	}
	if len(b) == 1 {
		acc = addCarry(acc, uint64(b[0])<<8) // odd byte padded with zero (RFC 1071 section 4.1)
	}
	return acc
}

// addCarry adds with end-around carry.
func addCarry(a, b uint64) uint64 {
	s := a + b
	if s < a {
		s++
	}
	return s
}

// foldChecksum folds a 64-bit sum to 16 bits and complements it.
func foldChecksum(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return ^uint16(acc)
}

// checksum returns the Internet checksum of b.
func checksum(b []byte) uint16 {
	return foldChecksum(sumBytes(b, 0))
}

// pseudoHeaderSum is the sum of the IPv4 (RFC 793 section 3.1) or IPv6
// (RFC 8200 section 8.1) pseudo-header for an upper-layer checksum.
func pseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint64 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:]))
	} else {
		s, d := src.As16(), dst.As16()
		acc = sumBytes(s[:], 0)
		acc = sumBytes(d[:], acc)
	}
	return acc + uint64(proto) + uint64(length)
}
