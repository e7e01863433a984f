import FillGuardCore

/// The check a store keeps beside a snapshot: it covers the snapshot's sequence as well as its
/// payload, so that damage to the sequence (which says which records the snapshot covers, and
/// so which are skipped) is found. Stored as a 64-bit number: bit 32 set, then the CRC-32 of
/// the payload followed by the sequence (little-endian). A check below 2^32 is the payload's
/// CRC-32 alone, as stores wrote before: still read.
public enum SnapshotCheck {
    /// The check to store for a snapshot.
    public static func stored(payload: [UInt8], sequence: UInt64) -> Int64 {
        var covered = payload
        withUnsafeBytes(of: sequence.littleEndian) { covered.append(contentsOf: $0) }
        return Int64(1) << 32 | Int64(CRC32.checksum(covered))
    }

    /// The checksum a snapshot read back is judged by (`JournalRecord.isIntact`): its payload's
    /// own when the stored check holds for the payload and the sequence, one that fails if not.
    public static func checksum(stored: Int64, payload: [UInt8], sequence: UInt64) -> UInt32 {
        guard stored >> 32 != 0 else { return UInt32(truncatingIfNeeded: stored) } // written before the sequence was covered
        let own = CRC32.checksum(payload)
        return stored == Self.stored(payload: payload, sequence: sequence) ? own : ~own
    }
}
