import FillGuardCore

/// The load-time check, for stores, that no stored unit (a frame of records, or one record) is
/// missing from the middle of a symbol's journal.
///
/// Each unit names the last sequence of the symbol's unit written before it (0 for the symbol's
/// first). Read in append order, every intact unit must name the unit before it; the first unit
/// left may name one a snapshot deleted (at or below the snapshot's sequence). A unit lost from
/// the middle (say, one holding only an input's intents, which the lanes' own numbering cannot
/// see) breaks the chain. Units stored before a store kept the link (nil) restart it unchecked.
public struct JournalChain: Sendable {
    /// A unit that does not follow the one before it.
    public struct Broken: Error, CustomStringConvertible {
        /// What is missing, for a person.
        public var description: String
    }

    private var last: [Symbol: Int64] = [:]
    private var first: [Symbol: (frame: Int64, previous: Int64)] = [:]

    /// An empty chain.
    public init() {}

    /// Takes the next unit (`frame`: its position, for messages) in append order; throws when an
    /// intact unit does not follow its symbol's previous one, or its stored last sequence is not
    /// its records'.
    public mutating func add(frame: Int64, symbol: Symbol, records: [JournalRecord], last stored: Int64, previous: Int64?) throws(Broken) {
        // A damaged frame is the assembly's to judge (a torn tail, or corruption); the chain
        // goes on from what it says it held.
        let intact = records.allSatisfy { $0.isIntact && !$0.payload.isEmpty }
        if intact, let newest = records.map(\.sequence).max(), Int64(bitPattern: newest) != stored {
            throw Broken(description: "frame \(frame) of \(symbol) says it ends at \(JournalPosition.describe(stored: stored)) but its records end at \(JournalPosition.describe(newest))")
        }
        // A write cut short cuts the frame's last record (its header whole): that record is the
        // one the frame says it ends at. A damaged record before it, whose damaged length ran
        // over the records after it, is damage: taken for a torn tail, it would drop those
        // committed records with it. (A frame cut inside a header reads as a record of sequence
        // 0, which the assembly judges as before.)
        if !intact, let damaged = records.last, !damaged.isIntact || damaged.payload.isEmpty, damaged.sequence != 0,
           Int64(bitPattern: damaged.sequence) != stored {
            throw Broken(description: "frame \(frame) of \(symbol) ends at \(JournalPosition.describe(stored: stored)), but a damaged record at \(JournalPosition.describe(damaged.sequence)) runs to its end: damage inside the frame, not a write cut short")
        }
        if let previous {
            if let before = last[symbol] {
                if intact, previous > before {
                    throw Broken(description: "frame \(frame) of \(symbol) follows a frame ending at \(JournalPosition.describe(stored: previous)), but the frame before it ends at \(JournalPosition.describe(stored: before)): a frame between them is gone")
                }
                if intact, previous < before {
                    throw Broken(description: "frame \(frame) of \(symbol) follows a frame ending at \(JournalPosition.describe(stored: previous)), but the frame before it already ends at \(JournalPosition.describe(stored: before)): frames are repeated or out of order")
                }
            } else {
                first[symbol] = (frame, previous)
            }
        }
        last[symbol] = stored
    }

    /// Checks each symbol's first unit against its snapshot: it must follow the start (0) or a
    /// unit the snapshot covered.
    public func check(snapshots: [JournalRecord]) throws(Broken) {
        var covered: [Symbol: Int64] = [:]
        for snapshot in snapshots { covered[snapshot.symbol] = Int64(bitPattern: snapshot.sequence) }
        for (symbol, start) in first where start.previous != 0 {
            guard let snapshot = covered[symbol], start.previous <= snapshot else {
                throw Broken(description: "the first frame of \(symbol) (frame \(start.frame)) follows a frame ending at \(JournalPosition.describe(stored: start.previous)), which neither the journal nor a snapshot holds: the frames before it are gone")
            }
        }
    }
}
