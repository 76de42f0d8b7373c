#!/usr/bin/env python3
"""An independent RFC 8418 (X25519 key agreement in CMS) peer for the tests.

No tool on Debian 12 reads or writes RFC 8418 messages (OpenSSL 3.0's CMS,
gpgsm 2.2 and NSS 3.87 have no X25519 key agreement), so this small one,
written from the RFCs with Python's `cryptography` (X25519, HKDF, AES key
wrap, AES-GCM/CBC) and a DER walker, stands in for one:

  rfc8418.py decrypt KEY.pem MESSAGE.der OUT
      MESSAGE.der: EnvelopedData or AuthEnvelopedData (DER) with an X25519
      KeyAgreeRecipientInfo; KEY.pem the recipient's X25519 private key.
  rfc8418.py encrypt CERT.pem IN OUT.eml [--ukm HEX] [--kdf OID] [--wrap 128|256]
                     [--eph-len N] [--flip-wrapped] [--gcm]
      Writes application/pkcs7-mime with one X25519 recipient. The options
      after --ukm make deliberately broken messages for the error tests.
"""
import base64
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

HKDF_SCHEMES = {
    "1.2.840.113549.1.9.16.3.19": hashes.SHA256,
    "1.2.840.113549.1.9.16.3.20": hashes.SHA384,
    "1.2.840.113549.1.9.16.3.21": hashes.SHA512,
}
WRAP = {"2.16.840.1.101.3.4.1.5": 16, "2.16.840.1.101.3.4.1.25": 24, "2.16.840.1.101.3.4.1.45": 32}
X25519_OID = "1.3.101.110"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
AES256_GCM = "2.16.840.1.101.3.4.1.46"


# ---- DER ----------------------------------------------------------------
def tlv(b, i):
    t = b[i]
    n = b[i + 1]
    h = 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[i + 2:i + 2 + k], "big")
        h = 2 + k
    return t, i + h, i + h + n


def kids(b, s, e):
    out = []
    while s < e:
        t, cs, ce = tlv(b, s)
        out.append((t, s, cs, ce))
        s = ce
    return out


def oid_text(b):
    v = [b[0] // 40, b[0] % 40]
    n = 0
    for x in b[1:]:
        n = (n << 7) | (x & 0x7F)
        if not x & 0x80:
            v.append(n)
            n = 0
    return ".".join(map(str, v))


def enc(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    be = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(be)]) + be + content


def oid(text):
    p = [int(x) for x in text.split(".")]
    out = bytes([p[0] * 40 + p[1]])
    for x in p[2:]:
        chunk = [x & 0x7F]
        x >>= 7
        while x:
            chunk.insert(0, 0x80 | (x & 0x7F))
            x >>= 7
        out += bytes(chunk)
    return enc(0x06, out)


def integer(v):
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return enc(0x02, b)


def seq(*parts):
    return enc(0x30, b"".join(parts))


def shared_info(wrap_oid, ukm, kek_len):
    parts = [seq(oid(wrap_oid))]
    if ukm is not None:
        parts.append(enc(0xA0, enc(0x04, ukm)))
    parts.append(enc(0xA2, enc(0x04, (kek_len * 8).to_bytes(4, "big"))))
    return seq(*parts)


def kek_for(z, scheme, wrap_oid, ukm):
    kek_len = WRAP[wrap_oid]
    return HKDF(algorithm=HKDF_SCHEMES[scheme](), length=kek_len, salt=None,
                info=shared_info(wrap_oid, ukm, kek_len)).derive(z)


# ---- decrypt --------------------------------------------------------------
def decrypt(key_pem, msg_der, out_path):
    key = serialization.load_pem_private_key(open(key_pem, "rb").read(), None)
    d = open(msg_der, "rb").read()
    _, cs, ce = tlv(d, 0)
    ci = kids(d, cs, ce)
    auth = oid_text(d[ci[0][2]:ci[0][3]]) == "1.2.840.113549.1.9.16.1.23"
    _, es, ee = tlv(d, ci[1][2])
    env = kids(d, es, ee)
    rset = [k for k in env if k[0] == 0x31][0]
    cek = None
    for ri in kids(d, rset[2], rset[3]):
        if ri[0] != 0xA1:
            continue
        f = kids(d, ri[2], ri[3])
        orig = kids(d, f[1][2], f[1][3])[0]
        if orig[0] != 0xA1:
            continue
        alg, pub = kids(d, orig[2], orig[3])
        if oid_text(d[kids(d, alg[2], alg[3])[0][2]:kids(d, alg[2], alg[3])[0][3]]) != X25519_OID:
            continue
        eph = d[pub[2] + 1:pub[3]]  # BIT STRING: skip the unused-bits octet
        ukm = None
        i = 2
        if f[i][0] == 0xA1:
            u = kids(d, f[i][2], f[i][3])[0]
            ukm = d[u[2]:u[3]]
            i += 1
        kea = kids(d, f[i][2], f[i][3])
        scheme = oid_text(d[kea[0][2]:kea[0][3]])
        wrap_alg = kids(d, kea[1][2], kea[1][3])[0]
        wrap_oid = oid_text(d[wrap_alg[2]:wrap_alg[3]])
        rek = kids(d, f[i + 1][2], f[i + 1][3])[0]
        ek = kids(d, rek[2], rek[3])[1]
        z = key.exchange(X25519PublicKey.from_public_bytes(eph))
        try:  # another X25519 recipient's info does not unwrap with our key
            cek = aes_key_unwrap(kek_for(z, scheme, wrap_oid, ukm), d[ek[2]:ek[3]])
            break
        except InvalidUnwrap:
            continue
    if cek is None:
        sys.exit("no X25519 recipient info")
    eci_i = env.index(rset) + 1
    eci = kids(d, env[eci_i][2], env[eci_i][3])
    calg = kids(d, eci[1][2], eci[1][3])
    ct = d[eci[2][2]:eci[2][3]]
    if auth:
        gp = kids(d, calg[1][2], calg[1][3])
        nonce = d[gp[0][2]:gp[0][3]]
        mac = env[eci_i + 1]
        plain = AESGCM(cek).decrypt(nonce, ct + d[mac[2]:mac[3]], None)
    else:
        iv = d[calg[1][2]:calg[1][3]]
        dec = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
        padded = dec.update(ct) + dec.finalize()
        u = padding.PKCS7(128).unpadder()
        plain = u.update(padded) + u.finalize()
    open(out_path, "wb").write(plain)


# ---- encrypt --------------------------------------------------------------
def encrypt(cert_pem, in_path, out_path, opts):
    cert = x509.load_pem_x509_certificate(open(cert_pem, "rb").read())
    scheme = opts.get("kdf", "1.2.840.113549.1.9.16.3.19")
    wrap_bits = int(opts.get("wrap", "256"))
    wrap_oid = "2.16.840.1.101.3.4.1.45" if wrap_bits == 256 else "2.16.840.1.101.3.4.1.5"
    ukm = bytes.fromhex(opts["ukm"]) if "ukm" in opts else None
    eph = X25519PrivateKey.generate()
    z = eph.exchange(cert.public_key())
    kek_scheme = scheme if scheme in HKDF_SCHEMES else "1.2.840.113549.1.9.16.3.19"
    kek = kek_for(z, kek_scheme, wrap_oid, ukm)
    cek = os.urandom(32)
    wrapped = aes_key_wrap(kek, cek)
    if "flip-wrapped" in opts:
        wrapped = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    eph_pub = eph_pub[:int(opts.get("eph-len", "32"))]
    orig = enc(0xA0, enc(0xA1, seq(oid(X25519_OID)) + enc(0x03, b"\x00" + eph_pub)))
    kari = integer(3) + orig
    if ukm is not None:
        kari += enc(0xA1, enc(0x04, ukm))
    kari += seq(oid(scheme), seq(oid(wrap_oid)))
    ias = seq(cert.issuer.public_bytes(), integer(cert.serial_number))
    kari += seq(seq(ias, enc(0x04, wrapped)))
    ris = enc(0x31, enc(0xA1, kari))
    text = open(in_path, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if "gcm" in opts:
        nonce = os.urandom(12)
        sealed = AESGCM(cek).encrypt(nonce, text, None)
        eci = seq(oid("1.2.840.113549.1.7.1"),
                  seq(oid(AES256_GCM), seq(enc(0x04, nonce), integer(16))),
                  enc(0x80, sealed[:-16]))
        body = seq(integer(0), ris, eci, enc(0x04, sealed[-16:]))
        ctype, smime = "1.2.840.113549.1.9.16.1.23", "authEnveloped-data"
    else:
        iv = os.urandom(16)
        p = padding.PKCS7(128).padder()
        e = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
        ct = e.update(p.update(text) + p.finalize()) + e.finalize()
        eci = seq(oid("1.2.840.113549.1.7.1"), seq(oid(AES256_CBC), enc(0x04, iv)), enc(0x80, ct))
        body = seq(integer(2), ris, eci)
        ctype, smime = "1.2.840.113549.1.7.3", "enveloped-data"
    der = seq(oid(ctype), enc(0xA0, body))
    b64 = base64.encodebytes(der).decode().replace("\n", "\r\n")
    head = ("MIME-Version: 1.0\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n"
            "Content-Type: application/pkcs7-mime; smime-type=%s; name=\"smime.p7m\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" % smime)
    open(out_path, "w", newline="").write(head + b64)


def main():
    if sys.argv[1] == "decrypt":
        decrypt(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    opts = {}
    rest = sys.argv[5:]
    i = 0
    while i < len(rest):
        name = rest[i][2:]
        if name in ("flip-wrapped", "gcm"):
            opts[name] = True
            i += 1
        else:
            opts[name] = rest[i + 1]
            i += 2
    encrypt(sys.argv[2], sys.argv[3], sys.argv[4], opts)


if __name__ == "__main__":
    main()
