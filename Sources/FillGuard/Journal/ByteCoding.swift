import FillGuardCore

/// Appends values to a byte buffer in the journal's compact format (little-endian varints,
/// length-prefixed UTF-8 strings).
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func write(_ byte: UInt8) { bytes.append(byte) }

    mutating func write(varint value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// Zig-zag, so that small negative numbers stay short.
    mutating func write(signed value: Int64) {
        write(varint: UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func write(int128 value: Int128) {
        write(signed: Int64(truncatingIfNeeded: value))
        write(signed: Int64(truncatingIfNeeded: value >> 64))
    }

    mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            write(varint: UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func write(flag: Bool) { bytes.append(flag ? 1 : 0) }
}

/// Reads what `ByteWriter` wrote; every read checks bounds and throws on damage.
struct ByteReader {
    struct Damaged: Error {}

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func byte() throws(Damaged) -> UInt8 {
        guard offset < bytes.count else { throw Damaged() }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func varint() throws(Damaged) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte()
            guard shift < 64 else { throw Damaged() }
            result |= UInt64(next & 0x7F) << shift
            if next & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func signed() throws(Damaged) -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    mutating func int128() throws(Damaged) -> Int128 {
        let low = try signed()
        let high = try signed()
        return (Int128(high) << 64) | Int128(UInt64(bitPattern: low))
    }

    mutating func string() throws(Damaged) -> String {
        let count = Int(clamping: try varint())
        guard count <= bytes.count - offset else { throw Damaged() }
        defer { offset += count }
        return String(decoding: bytes[offset..<offset + count], as: UTF8.self)
    }

    mutating func bytes(_ count: Int) throws(Damaged) -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - offset else { throw Damaged() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func bool() throws(Damaged) -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        default: throw Damaged()
        }
    }
}
