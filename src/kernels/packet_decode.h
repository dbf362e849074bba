/* The L2-L4 decoder of one frame, shared by decode_rows and the capture walkers.
 *
 * The walkers decode each packet right after its record header, while its bytes are in
 * cache, so the decoder is defined here (static inline) for them to inline rather than
 * call. What is decoded is documented in docs/capture.md ("What is decoded"): addresses,
 * DS byte, protocol after the IPv6 extension walk, ports, datagram length, plus the
 * offsets the rewriter needs (IP header, outer 802.1Q tag). Bad headers are never an
 * error: the row is flagged FLAG_MALFORMED and passes through untouched.
 *
 * Every read stays inside the frame's captured bytes f[0, caplen): the callers have
 * checked that those lie inside the buffer.
 */
#ifndef DIFFSERV_PACKET_DECODE_H
#define DIFFSERV_PACKET_DECODE_H

#include "kernels.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86DD
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88A8
#define ETHERTYPE_QINQ_OLD 0x9100
#define ETHERTYPE_PPPOE_SESSION 0x8864
#define ETHERTYPE_MPLS 0x8847
#define ETHERTYPE_MPLS_MULTICAST 0x8848
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057
#define PPP_MPLS 0x0281
#define PPP_MPLS_MULTICAST 0x0283
#define IPV6_OPT_JUMBO 0xC2
#define JUMBO_MIN 65536 /* RFC 2675: a jumbo payload length is at least this */

/* link-layer results for the L3 offset (else the offset from the frame start) */
#define L3_NOT_IP (-1)
#define L3_BAD (-2)

#define V4_MAPPED (UINT64_C(0xFFFF) << 32)

#define DECODE_INLINE static inline __attribute__((always_inline))

/* Where the link layer puts the IP header: offset from the frame start (or
 * L3_NOT_IP/L3_BAD), IP version, offset of the outer TCI from the frame start (-1 none),
 * the direction the header states (0 none). */
typedef struct {
    int64_t l3;
    int version;
    int64_t vlan;
    int dir;
} link_t;

static inline int ethertype_version(uint32_t ethertype) {
    if (ethertype == ETHERTYPE_IPV4) return 4;
    if (ethertype == ETHERTYPE_IPV6) return 6;
    return 0;
}

/* Follow 802.1Q/802.1ad tags, PPPoE, MPLS and LLC/SNAP from f[pos]; `ethertype` was read
 * just before f[pos]. Fills l3, version and vlan of `out`. */
static inline void walk_ethertype(const uint8_t *f, int64_t caplen, int64_t pos,
                                  uint32_t ethertype, link_t *out) {
    out->version = 0;
    out->vlan = -1;
    if (ethertype == ETHERTYPE_IPV4) { /* the common case, first */
        out->l3 = pos;
        out->version = 4;
        return;
    }
    while (ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ ||
           ethertype == ETHERTYPE_QINQ_OLD) {
        if (pos + 4 > caplen) {
            out->l3 = L3_BAD;
            return;
        }
        if (out->vlan < 0) out->vlan = pos;
        ethertype = load_be16(f + pos + 2);
        pos += 4;
    }
    if (ethertype == ETHERTYPE_PPPOE_SESSION) {
        if (pos + 8 > caplen) {
            out->l3 = L3_BAD;
            return;
        }
        uint32_t ppp = load_be16(f + pos + 6);
        if (ppp == PPP_IPV4 || ppp == PPP_IPV6) {
            out->l3 = pos + 8;
            out->version = ppp == PPP_IPV4 ? 4 : 6;
        } else {
            out->l3 = L3_NOT_IP;
        }
        return;
    }
    if (ethertype == ETHERTYPE_MPLS || ethertype == ETHERTYPE_MPLS_MULTICAST) {
        for (;;) {
            if (pos + 4 > caplen) {
                out->l3 = L3_BAD;
                return;
            }
            int bottom = f[pos + 2] & 0x01;
            pos += 4;
            if (bottom) break;
        }
        if (pos + 1 > caplen) {
            out->l3 = L3_BAD;
            return;
        }
        int version = f[pos] >> 4;
        if (version == 4 || version == 6) {
            out->l3 = pos;
            out->version = version;
        } else {
            out->l3 = L3_NOT_IP; /* a pseudowire or something else under the labels */
        }
        return;
    }
    if (ethertype < 0x0600) {
        /* 802.3 length field: IP only behind LLC/SNAP with a zero OUI */
        if (pos + 8 <= caplen && f[pos] == 0xAA && f[pos + 1] == 0xAA && f[pos + 2] == 0x03 &&
            f[pos + 3] == 0 && f[pos + 4] == 0 && f[pos + 5] == 0) {
            int version = ethertype_version(load_be16(f + pos + 6));
            out->l3 = version ? pos + 8 : L3_NOT_IP;
            out->version = version;
            return;
        }
        out->l3 = L3_NOT_IP;
        return;
    }
    int version = ethertype_version(ethertype);
    out->l3 = version ? pos : L3_NOT_IP;
    out->version = version;
}

static inline int sll_direction(uint32_t packet_type) {
    if (packet_type <= 3) return DIR_LOCAL_IN;
    if (packet_type == 4) return DIR_LOCAL_OUT;
    return 0;
}

static inline int null_family_version(uint32_t family) {
    if (family == 2) return 4;
    if (family == 10 || family == 24 || family == 28 || family == 30) return 6;
    return 0;
}

/* PPP from f[pos]: optional 0xFF 0x03, then a 1- or 2-byte protocol field. */
static inline void ppp_link(const uint8_t *f, int64_t caplen, int64_t pos, link_t *out) {
    out->version = 0;
    out->vlan = -1;
    if (pos + 2 <= caplen && f[pos] == 0xFF && f[pos + 1] == 0x03)
        pos += 2; /* HDLC-like framing: address and control */
    if (pos + 1 > caplen) {
        out->l3 = L3_BAD;
        return;
    }
    uint32_t proto;
    if (f[pos] & 0x01) {
        proto = f[pos]; /* protocol-field compression: one byte */
        pos += 1;
    } else {
        if (pos + 2 > caplen) {
            out->l3 = L3_BAD;
            return;
        }
        proto = load_be16(f + pos);
        pos += 2;
    }
    if (proto == PPP_IPV4 || proto == PPP_IPV6) {
        out->l3 = pos;
        out->version = proto == PPP_IPV4 ? 4 : 6;
    } else if (proto == PPP_MPLS || proto == PPP_MPLS_MULTICAST) {
        walk_ethertype(f, caplen, pos, ETHERTYPE_MPLS, out);
    } else {
        out->l3 = L3_NOT_IP;
    }
}

/* Cisco HDLC from f[pos]: address, control, then an Ethernet type. */
static inline void cisco_hdlc_link(const uint8_t *f, int64_t caplen, int64_t pos, link_t *out) {
    if (pos + 4 > caplen) {
        out->l3 = L3_BAD;
        out->version = 0;
        out->vlan = -1;
        return;
    }
    walk_ethertype(f, caplen, pos + 4, load_be16(f + pos + 2), out);
}

static inline void link_layer(const uint8_t *f, int64_t caplen, int64_t linktype, link_t *out) {
    out->dir = 0;
    if (linktype == LINKTYPE_ETHERNET) {
        if (caplen < 14) goto bad;
        walk_ethertype(f, caplen, 14, load_be16(f + 12), out);
        return;
    }
    out->vlan = -1;
    out->version = 0;
    switch (linktype) {
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_BSD12:
    case LINKTYPE_RAW_BSD14: {
        if (caplen < 1) goto bad;
        int version = f[0] >> 4;
        if (version != 4 && version != 6) goto bad;
        out->l3 = 0;
        out->version = version;
        return;
    }
    case LINKTYPE_IPV4:
        out->l3 = 0;
        out->version = 4;
        return;
    case LINKTYPE_IPV6:
        out->l3 = 0;
        out->version = 6;
        return;
    case LINKTYPE_LINUX_SLL:
        if (caplen < 16) goto bad;
        walk_ethertype(f, caplen, 16, load_be16(f + 14), out);
        out->dir = sll_direction(load_be16(f));
        return;
    case LINKTYPE_LINUX_SLL2:
        if (caplen < 20) goto bad;
        walk_ethertype(f, caplen, 20, load_be16(f), out);
        out->dir = sll_direction(f[10]);
        return;
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
        if (caplen < 4) goto bad;
        uint32_t family;
        if (linktype == LINKTYPE_LOOP) {
            family = load_be32(f);
        } else {
            family = load_le32(f);
            if (family > 0xFFFF) family = load_be32(f); /* written in big-endian host order */
        }
        int version = null_family_version(family);
        out->l3 = version ? 4 : L3_NOT_IP;
        out->version = version;
        return;
    }
    case LINKTYPE_PPP:
        ppp_link(f, caplen, 0, out);
        return;
    case LINKTYPE_PPP_HDLC:
        if (caplen >= 1 && (f[0] == 0x0F || f[0] == 0x8F))
            cisco_hdlc_link(f, caplen, 0, out);
        else
            ppp_link(f, caplen, 0, out);
        return;
    case LINKTYPE_C_HDLC:
        cisco_hdlc_link(f, caplen, 0, out);
        return;
    case LINKTYPE_PPP_WITH_DIR:
    case LINKTYPE_C_HDLC_WITH_DIR:
        if (caplen < 1) goto bad;
        if (linktype == LINKTYPE_PPP_WITH_DIR)
            ppp_link(f, caplen, 1, out);
        else
            cisco_hdlc_link(f, caplen, 1, out);
        out->dir = f[0] != 0 ? DIR_LOCAL_OUT : DIR_LOCAL_IN;
        return;
    default:
        out->l3 = L3_NOT_IP;
        return;
    }
bad:
    out->l3 = L3_BAD;
    out->version = 0;
    out->vlan = -1;
    out->dir = 0;
}

/* Offset (from the IPv6 header h) of the Jumbo Payload value in the hop-by-hop header at
 * h[40]: -1 when the captured part of the header holds none, L3_BAD for a jumbo option
 * whose length is not 4 (RFC 2675). Only the `avail` captured bytes are looked at. */
static inline int64_t jumbo_option(const uint8_t *h, int64_t avail) {
    if (avail < 42) return -1;
    int64_t end = 40 + ((int64_t)h[41] + 1) * 8;
    if (end > avail) end = avail;
    int64_t pos = 42;
    while (pos < end) {
        int kind = h[pos];
        if (kind == 0) { /* Pad1 */
            pos += 1;
            continue;
        }
        if (pos + 2 > end) return -1;
        int size = h[pos + 1];
        if (kind == IPV6_OPT_JUMBO) {
            if (size != 4) return L3_BAD;
            if (pos + 6 > end) return -1;
            return pos + 2;
        }
        pos += 2 + size;
    }
    return -1;
}

static inline int has_ports(int protocol) {
    return protocol == 6 || protocol == 17 || protocol == 132;
}

/* One decoded row, built in registers and stored once (the column stores are uint8
 * pointers, which may alias anything: storing as we go would make the compiler reload). */
typedef struct {
    int64_t l3_off, vlan_off;
    uint64_t saddr_hi, saddr_lo, daddr_hi, daddr_lo;
    uint32_t ip_len;
    uint32_t sport, dport;
    int ip_version, ds, protocol, flags;
} decoded_t;

/* IPv4 header at f[rel]: avail captured and wire_avail wire bytes from there on. */
DECODE_INLINE void decode_ipv4(const uint8_t *h, int64_t avail, int64_t wire_avail, int flag,
                               decoded_t *d) {
    if (avail < 2) goto malformed;
    int b0 = h[0];
    int64_t ihl = (int64_t)(b0 & 0x0F) * 4;
    if ((b0 >> 4) != 4 || ihl < 20 || ihl > wire_avail) goto malformed;
    int64_t length = wire_avail;
    if (avail >= 4) {
        int64_t total = load_be16(h + 2);
        if (total == 0) {
            flag |= FLAG_LENGTH_FROM_FRAME; /* segmentation offload: the frame says */
        } else if (total < ihl || total > wire_avail) {
            goto malformed;
        } else {
            length = total;
        }
    }
    d->ip_version = IPV4;
    d->ds = h[1];
    d->ip_len = (uint32_t)length;
    if (avail < 20) {
        /* the snap length cut the header (wire_avail >= ihl > avail): only the DS byte
         * (and the length) is known. Addresses, protocol and ports stay 0: an all-zero
         * address is not v4-mapped, so no IPv4 address filter can match it */
        d->flags = flag | FLAG_HEADER_CUT | FLAG_NO_PORTS;
        return;
    }
    int proto = h[9];
    d->protocol = proto;
    d->saddr_lo = V4_MAPPED | load_be32(h + 12);
    d->daddr_lo = V4_MAPPED | load_be32(h + 16);
    if ((load_be16(h + 6) & 0x3FFF) != 0) {
        flag |= FLAG_FRAGMENT | FLAG_NO_PORTS;
    } else if (has_ports(proto) && ihl + 4 <= avail && ihl + 4 <= length) {
        d->sport = load_be16(h + ihl);
        d->dport = load_be16(h + ihl + 2);
    } else {
        flag |= FLAG_NO_PORTS;
    }
    d->flags = flag;
    return;
malformed:
    d->l3_off = -1;
    d->flags = flag | FLAG_MALFORMED;
}

static inline int ipv6_ds(const uint8_t *h) { return ((h[0] & 0x0F) << 4) | (h[1] >> 4); }

/* IPv6 header at h: the fixed header, the jumbo option, the extension header walk. */
static inline void decode_ipv6(const uint8_t *h, int64_t avail, int64_t wire_avail, int flag,
                               decoded_t *d) {
    int64_t length;
    if (avail < 2 || (h[0] >> 4) != 6 || wire_avail < 40) goto malformed;
    if (avail < 40) {
        /* the snap length cut the fixed header: the DS byte and perhaps the length */
        length = wire_avail;
        if (avail >= 6) {
            int64_t payload = load_be16(h + 4);
            if (payload == 0)
                flag |= FLAG_LENGTH_FROM_FRAME;
            else if (40 + payload > wire_avail)
                goto malformed;
            else
                length = 40 + payload;
        }
        d->ip_version = IPV6;
        d->ds = ipv6_ds(h);
        d->ip_len = (uint32_t)length;
        d->flags = flag | FLAG_HEADER_CUT | FLAG_NO_PORTS;
        return;
    }
    int64_t payload = load_be16(h + 4);
    int64_t jumbo = -1;
    if (h[6] == 0) {
        jumbo = jumbo_option(h, avail);
        if (jumbo == L3_BAD) goto malformed;
    }
    if (payload != 0) {
        length = 40 + payload;
        /* RFC 2675: a jumbo option needs length 0 */
        if (jumbo >= 0 || length > wire_avail) goto malformed;
    } else if (jumbo >= 0) {
        int64_t jumbo_len = load_be32(h + jumbo);
        length = 40 + jumbo_len;
        if (jumbo_len < JUMBO_MIN || length > wire_avail) goto malformed;
    } else {
        /* length 0 without a jumbo option (in the captured bytes): segmentation offload */
        length = wire_avail;
        flag |= FLAG_LENGTH_FROM_FRAME;
    }
    int nh = h[6];
    int proto = nh;
    int64_t off = 40;
    for (;;) {
        if (has_ports(nh)) {
            proto = nh;
            if (off + 4 <= avail && off + 4 <= length) {
                d->sport = load_be16(h + off);
                d->dport = load_be16(h + off + 2);
            } else {
                flag |= FLAG_NO_PORTS;
            }
            break;
        }
        if (nh == 58 || nh == 98 || nh == 41 || nh == 50 || nh == 51) {
            proto = nh;
            flag |= FLAG_NO_PORTS;
            break;
        }
        if (nh == 0 || nh == 60 || nh == 43) {
            if (off + 2 > length) goto malformed;
            if (off + 2 > avail) {
                flag |= FLAG_NO_PORTS;
                break;
            }
            int next = h[off];
            off += ((int64_t)h[off + 1] + 1) * 8;
            if (off > length) goto malformed;
            nh = next;
            continue;
        }
        if (nh == 44) flag |= FLAG_FRAGMENT;
        flag |= FLAG_NO_PORTS;
        break;
    }
    d->ip_version = IPV6;
    d->ds = ipv6_ds(h);
    d->protocol = proto;
    d->saddr_hi = load_be64(h + 8);
    d->saddr_lo = load_be64(h + 16);
    d->daddr_hi = load_be64(h + 24);
    d->daddr_lo = load_be64(h + 32);
    d->ip_len = (uint32_t)length;
    d->flags = flag;
    return;
malformed:
    d->l3_off = -1;
    d->sport = 0;
    d->dport = 0;
    d->flags = flag | FLAG_MALFORMED;
}

/* Fill every decoded column of row i from the frame at buf[start, start+caplen), which
 * the caller has checked lies inside buf. `direction` is the row's direction so far: when
 * it is 0, the link layer (a Linux cooked header, a PPP direction byte) may set it. The
 * direction column is written too. */
DECODE_INLINE void decode_one(const columns_t *c, const uint8_t *buf, Py_ssize_t i,
                              int64_t start, int64_t caplen, int64_t wirelen, int64_t linktype,
                              int direction) {
    const uint8_t *f = buf + start;
    int flag = caplen < wirelen ? FLAG_TRUNCATED : 0;
    if (wirelen < caplen) wirelen = caplen;
    decoded_t d = {.l3_off = -1};
    link_t link;
    link_layer(f, caplen, linktype, &link);
    if (link.dir != 0 && direction == 0) direction = link.dir;
    if (link.l3 == L3_NOT_IP) {
        d.flags = flag;
    } else if (link.l3 == L3_BAD) {
        d.flags = flag | FLAG_MALFORMED;
    } else {
        d.l3_off = start + link.l3;
        if (link.version == 4)
            decode_ipv4(f + link.l3, caplen - link.l3, wirelen - link.l3, flag, &d);
        else
            decode_ipv6(f + link.l3, caplen - link.l3, wirelen - link.l3, flag, &d);
    }
    c->l3_off[i] = d.l3_off;
    c->vlan_off[i] = link.vlan < 0 ? -1 : start + link.vlan;
    c->ip_version[i] = (uint8_t)d.ip_version;
    c->ds_byte[i] = (uint8_t)d.ds;
    c->protocol[i] = (uint8_t)d.protocol;
    c->saddr_hi[i] = d.saddr_hi;
    c->saddr_lo[i] = d.saddr_lo;
    c->daddr_hi[i] = d.daddr_hi;
    c->daddr_lo[i] = d.daddr_lo;
    c->sport[i] = (uint16_t)d.sport;
    c->dport[i] = (uint16_t)d.dport;
    c->ip_len[i] = d.ip_len;
    c->flags[i] = (uint8_t)d.flags;
    c->direction[i] = (uint8_t)direction;
}

/* decode_rows(buf, linktype, cols): defined in packet_decode.c, listed in the packet
 * method table (packet_rewrite.c). */
PyObject *packet_decode_rows(PyObject *self, PyObject *args);

#endif
