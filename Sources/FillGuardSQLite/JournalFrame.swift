import FillGuard
import FillGuardCore
import Foundation

/// The body of one frame row: a symbol's records from one appended batch, one after another,
/// each as sequence (8 bytes), kind (1), checksum (4), payload length (4), all little-endian,
/// then the payload. Each record keeps its own checksum, so the load rules judge every record
/// as they would a row of its own.
///
/// The checksum covers the sequence and the kind too (file format 3): the kind is written with
/// its high bit set (`sealedKind`) and the stored checksum is the payload's CRC-32 XOR the CRC-32
/// of the sequence and that kind byte. Damage to either is then a failed checksum, where it
/// would otherwise move a record to another place in its symbol's order or make it a kind the
/// load skips. A kind byte without the high bit is a record of format 2, its checksum the
/// payload's alone: still read.
enum JournalFrame {
    /// Bytes before each payload.
    static let headerSize = 17
    /// The bit of the kind byte that says the checksum also covers the sequence and the kind.
    static let sealedKind: UInt8 = 0x80

    /// Appends one record's bytes to a frame body.
    static func append(_ record: JournalRecord, to body: inout [UInt8]) {
        append(sequence: record.sequence, kind: record.kind.rawValue, checksum: record.checksum, payload: record.payload, to: &body)
    }

    /// Appends one record's bytes, given field by field (payload as any byte collection), with
    /// the checksum sealed to the sequence and the kind.
    static func append<Payload: Collection<UInt8>>(sequence: UInt64, kind: UInt8, checksum: UInt32, payload: Payload, to body: inout [UInt8]) {
        body.reserveCapacity(body.count + headerSize + payload.count)
        let kind = kind | sealedKind
        withUnsafeBytes(of: sequence.littleEndian) { body.append(contentsOf: $0) }
        body.append(kind)
        withUnsafeBytes(of: (checksum ^ seal(sequence: sequence, kind: kind)).littleEndian) { body.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: payload.count).littleEndian) { body.append(contentsOf: $0) }
        body.append(contentsOf: payload)
    }

    /// The records of a body, in order. A body cut short ends with one record whose payload is
    /// what is left and whose checksum (the whole payload's) therefore fails: a torn record. An
    /// empty body (no frame is written without a record) is one such record too, so that the
    /// load rules judge it rather than read nothing there.
    static func records(in body: Data, symbol: Symbol) -> [JournalRecord] {
        let bytes = [UInt8](body)
        if bytes.isEmpty { return [JournalRecord(symbol: symbol, sequence: 0, kind: .input, payload: [], checksum: 1)] }
        var records: [JournalRecord] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= headerSize else {
                records.append(JournalRecord(symbol: symbol, sequence: 0, kind: .input, payload: [], checksum: 1))
                break
            }
            let sequence = read(UInt64.self, bytes, offset)
            let kindByte = bytes[offset + 8]
            let kind = JournalRecord.Kind(rawValue: kindByte & ~sealedKind)
            let written = read(UInt32.self, bytes, offset + 9)
            let stored = kindByte & sealedKind != 0 ? written ^ seal(sequence: sequence, kind: kindByte) : written
            let length = Int(read(UInt32.self, bytes, offset + 13))
            let start = offset + headerSize
            let end = min(bytes.count, start + length)
            let payload = Array(bytes[start..<end])
            // A kind no FillGuard writes, or a length that runs past the body (a record cut short,
            // or a damaged length), is damage: the record is kept with a checksum that fails.
            let checksum = kind == nil || start + length > bytes.count ? ~CRC32.checksum(payload) : stored
            records.append(JournalRecord(symbol: symbol, sequence: sequence, kind: kind ?? .input, payload: payload, checksum: checksum))
            offset = start + length
        }
        return records
    }

    /// True when the body ends inside a record (a header or a payload cut short), or is empty:
    /// what a write a crash cut short leaves. A last record that is whole but fails its checksum,
    /// or names a kind no FillGuard writes, was damaged after it was written.
    static func endsCutShort(_ body: Data) -> Bool {
        let bytes = [UInt8](body)
        if bytes.isEmpty { return true }
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= headerSize else { return true }
            let end = offset + headerSize + Int(read(UInt32.self, bytes, offset + 13))
            if end > bytes.count { return true }
            offset = end
        }
        return false
    }

    /// The CRC-32 of a record's sequence (little-endian) and kind byte, combined with its
    /// payload's checksum when stored.
    static func seal(sequence: UInt64, kind: UInt8) -> UInt32 {
        withUnsafeTemporaryAllocation(byteCount: 9, alignment: 1) { header in
            withUnsafeBytes(of: sequence.littleEndian) { header.copyMemory(from: $0) }
            header[8] = kind
            return CRC32.checksum(UnsafeRawBufferPointer(header))
        }
    }

    private static func read<Value: FixedWidthInteger>(_ type: Value.Type, _ bytes: [UInt8], _ offset: Int) -> Value {
        var value: Value = 0
        for index in 0..<MemoryLayout<Value>.size { value |= Value(bytes[offset + index]) << (8 * index) }
        return value
    }
}
