// MessagePack values <-> JavaScript values, with the mapping of the official client's
// MessagePack protocol (@msgpack/msgpack defaults): safe integers as integers, other numbers as
// float64, Uint8Array / ArrayBuffer views as bin, Date as the timestamp extension (-1) both
// ways, Map and plain objects as maps, undefined as nil. Unknown extensions decode as
// { type, data }.

const te = new TextEncoder();
const td = new TextDecoder();

export function encode(value) {
  let buf = new Uint8Array(64);
  let view = new DataView(buf.buffer);
  let pos = 0;
  const room = (n) => {
    if (pos + n <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, pos + n));
    next.set(buf);
    buf = next;
    view = new DataView(buf.buffer);
  };
  const u8 = (b) => { room(1); buf[pos++] = b; };
  const head = (b, n, size) => {
    room(1 + size);
    buf[pos++] = b;
    if (size === 1) view.setUint8(pos, n);
    else if (size === 2) view.setUint16(pos, n);
    else view.setUint32(pos, n);
    pos += size;
  };
  const bytes = (b) => { room(b.length); buf.set(b, pos); pos += b.length; };
  const sized = (n, fix, fixMax, b8, b16, b32) => {
    if (n < fixMax) u8(fix | n);
    else if (b8 && n < 256) head(b8, n, 1);
    else if (n < 65536) head(b16, n, 2);
    else head(b32, n, 4);
  };
  const int = (v) => {
    if (v >= 0) {
      if (v < 128) u8(v);
      else if (v < 256) head(0xcc, v, 1);
      else if (v < 65536) head(0xcd, v, 2);
      else if (v < 4294967296) head(0xce, v, 4);
      else { room(9); buf[pos++] = 0xcf; view.setBigUint64(pos, BigInt(v)); pos += 8; }
    } else if (v >= -32) u8(v & 0xff);
    else if (v >= -128) { room(2); buf[pos++] = 0xd0; view.setInt8(pos++, v); }
    else if (v >= -32768) { room(3); buf[pos++] = 0xd1; view.setInt16(pos, v); pos += 2; }
    else if (v >= -2147483648) { room(5); buf[pos++] = 0xd2; view.setInt32(pos, v); pos += 4; }
    else { room(9); buf[pos++] = 0xd3; view.setBigInt64(pos, BigInt(v)); pos += 8; }
  };
  const date = (d) => {
    const ms = d.getTime();
    const sec = Math.floor(ms / 1000);
    const nsec = (ms - sec * 1000) * 1e6;
    if (sec >= 0 && sec <= 0x3ffffffff) {
      if (nsec === 0 && sec <= 0xffffffff) {
        room(6); buf[pos++] = 0xd6; buf[pos++] = 0xff; view.setUint32(pos, sec); pos += 4;
      } else {
        room(10); buf[pos++] = 0xd7; buf[pos++] = 0xff;
        view.setUint32(pos, nsec * 4 + Math.floor(sec / 4294967296)); view.setUint32(pos + 4, sec >>> 0); pos += 8;
      }
    } else {
      room(15); buf[pos++] = 0xc7; buf[pos++] = 12; buf[pos++] = 0xff;
      view.setUint32(pos, nsec); view.setBigInt64(pos + 4, BigInt(sec)); pos += 12;
    }
  };
  const enc = (v, depth) => {
    if (depth > 100) throw new Error("Too deep objects in depth " + depth);
    if (v === null || v === undefined) u8(0xc0);
    else if (v === false) u8(0xc2);
    else if (v === true) u8(0xc3);
    else if (typeof v === "number") {
      if (Number.isSafeInteger(v)) int(v);
      else { room(9); buf[pos++] = 0xcb; view.setFloat64(pos, v); pos += 8; }
    } else if (typeof v === "bigint") {
      room(9);
      if (v >= 0n) { buf[pos++] = 0xcf; view.setBigUint64(pos, v); } else { buf[pos++] = 0xd3; view.setBigInt64(pos, v); }
      pos += 8;
    } else if (typeof v === "string") {
      const b = te.encode(v);
      sized(b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
      bytes(b);
    } else if (v instanceof Date) date(v);
    else if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      const b = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      sized(b.length, 0, 0, 0xc4, 0xc5, 0xc6);
      bytes(b);
    } else if (Array.isArray(v)) {
      sized(v.length, 0x90, 16, 0, 0xdc, 0xdd);
      for (const item of v) enc(item, depth + 1);
    } else if (v instanceof Map) {
      sized(v.size, 0x80, 16, 0, 0xde, 0xdf);
      for (const [k, item] of v) { enc(k, depth + 1); enc(item, depth + 1); }
    } else if (typeof v === "object") {
      const keys = Object.keys(v);
      sized(keys.length, 0x80, 16, 0, 0xde, 0xdf);
      for (const k of keys) { enc(k, depth + 1); enc(v[k], depth + 1); }
    } else {
      throw new Error("Unrecognized object: " + Object.prototype.toString.apply(v));
    }
  };
  enc(value, 0);
  return buf.slice(0, pos);
}

export function decode(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const str = (n) => { const s = td.decode(bytes.subarray(pos, pos + n)); pos += n; return s; };
  const bin = (n) => { const b = bytes.slice(pos, pos + n); pos += n; return b; };
  const arr = (n) => { const a = new Array(n); for (let i = 0; i < n; i++) a[i] = dec(); return a; };
  const map = (n) => {
    const o = {};
    for (let i = 0; i < n; i++) { const k = dec(); o[k] = dec(); }
    return o;
  };
  const ext = (n) => {
    const type = view.getInt8(pos++);
    if (type === -1) {
      let sec, nsec = 0;
      if (n === 4) sec = view.getUint32(pos);
      else if (n === 8) {
        const hi = view.getUint32(pos);
        sec = (hi & 3) * 4294967296 + view.getUint32(pos + 4);
        nsec = hi >>> 2;
      } else if (n === 12) {
        nsec = view.getUint32(pos);
        sec = Number(view.getBigInt64(pos + 4));
      } else throw new Error("Unrecognized data size for timestamp (expected 4, 8, or 12): " + n);
      pos += n;
      return new Date(sec * 1000 + nsec / 1e6);
    }
    return { type, data: bin(n) };
  };
  const u = (size) => {
    const v = size === 1 ? view.getUint8(pos) : size === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += size;
    return v;
  };
  const dec = () => {
    const b = view.getUint8(pos++);
    if (b < 0x80) return b;
    if (b < 0x90) return map(b & 0x0f);
    if (b < 0xa0) return arr(b & 0x0f);
    if (b < 0xc0) return str(b & 0x1f);
    if (b >= 0xe0) return b - 0x100;
    let v;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(u(1));
      case 0xc5: return bin(u(2));
      case 0xc6: return bin(u(4));
      case 0xc7: return ext(u(1));
      case 0xc8: return ext(u(2));
      case 0xc9: return ext(u(4));
      case 0xca: v = view.getFloat32(pos); pos += 4; return v;
      case 0xcb: v = view.getFloat64(pos); pos += 8; return v;
      case 0xcc: return u(1);
      case 0xcd: return u(2);
      case 0xce: return u(4);
      case 0xcf: v = view.getUint32(pos) * 4294967296 + view.getUint32(pos + 4); pos += 8; return v;
      case 0xd0: return view.getInt8(pos++);
      case 0xd1: v = view.getInt16(pos); pos += 2; return v;
      case 0xd2: v = view.getInt32(pos); pos += 4; return v;
      case 0xd3: v = view.getInt32(pos) * 4294967296 + view.getUint32(pos + 4); pos += 8; return v;
      case 0xd4: return ext(1);
      case 0xd5: return ext(2);
      case 0xd6: return ext(4);
      case 0xd7: return ext(8);
      case 0xd8: return ext(16);
      case 0xd9: return str(u(1));
      case 0xda: return str(u(2));
      case 0xdb: return str(u(4));
      case 0xdc: return arr(u(2));
      case 0xdd: return arr(u(4));
      case 0xde: return map(u(2));
      case 0xdf: return map(u(4));
      default: throw new Error("Unrecognized type byte: 0x" + b.toString(16));
    }
  };
  return dec();
}
