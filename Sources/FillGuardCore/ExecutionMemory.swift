/// The bounded memory of one symbol's applied execution ids: the duplicate detector.
///
/// Two generations of ids: new ids go into `current`; when it holds `generationSize` ids it
/// becomes `previous` (the older generation is forgotten) and a new `current` starts. So the
/// newest `generationSize` applied ids are always remembered, and never more than twice that:
/// memory stays flat however many fills a symbol takes. Every applied execution gets a serial
/// number (1, 2, ...); the ids of executions from serial `previousStart` on are remembered.
struct ExecutionMemory: Sendable {
    /// Ids per generation (the configured execution window).
    let generationSize: Int
    /// The newer generation.
    var current: ExecutionIDSet
    /// The older generation.
    var previous: ExecutionIDSet
    /// The serial of the last applied execution: the number of executions ever applied.
    var applied: UInt64 = 0
    /// The serial of the first execution of `previous`: every execution from here on is remembered.
    var previousStart: UInt64 = 1
    /// The serial of the first execution of `current`.
    var currentStart: UInt64 = 1

    init(generationSize: Int) {
        self.generationSize = max(1, generationSize)
        self.current = ExecutionIDSet(limit: self.generationSize)
        self.previous = ExecutionIDSet(limit: self.generationSize)
    }

    /// True if the id is remembered as applied.
    func contains(_ id: ExecutionID) -> Bool {
        let hash = ExecutionIDSet.hash(id)
        return current.contains(id, hash: hash) || previous.contains(id, hash: hash)
    }

    /// Reserves `id` for an execution being booked: false if it is remembered already. Undo with
    /// `release(_:)` if the execution is then refused; confirm with `commit()`.
    mutating func reserve(_ id: ExecutionID) -> Bool {
        let hash = ExecutionIDSet.hash(id)
        if previous.contains(id, hash: hash) { return false }
        return current.insert(id, hash: hash)
    }

    /// Forgets the reservation just made (its execution was refused).
    mutating func release(_ id: ExecutionID) {
        current.removeLast(id)
    }

    /// Confirms the reserved execution: returns its serial, and rotates the generations when the
    /// current one is full. The new generation starts empty and grows as the old one did (at
    /// counts of its own), instead of every symbol allocating a whole generation at its rotation.
    mutating func commit() -> UInt64 {
        applied += 1
        let serial = applied
        if current.count >= generationSize {
            previous = current
            previousStart = currentStart
            current = ExecutionIDSet(limit: generationSize)
            currentStart = applied + 1
        }
        return serial
    }

    /// True when every execution from `serial` on is still remembered.
    func remembersAll(since serial: UInt64) -> Bool { serial >= previousStart }

    /// The number of ids held.
    var count: Int { current.count + previous.count }
}

/// A set of execution ids, in insertion order, found through an open-addressing table keyed by a
/// cheap hash of the id's bytes (a few instructions per byte, where `Set` runs SipHash over the
/// normalised string). Up to 8 ids it is a plain list, scanned (an idle symbol holds one or two).
///
/// The table doubles when the ids reach `growAt`: half the table, less a jitter of up to an eighth
/// of it taken from the hash of the id that grew it last. Sets that fill in step (a thousand
/// symbols each getting their 129th fill within the same 10 ms) so grow at different counts,
/// spread over many fills, instead of all in the same few milliseconds. A table with room for
/// `limit` ids at half full (the generation's size) gets no jitter: it is the last one needed.
struct ExecutionIDSet: Sendable {
    /// The ids, oldest first.
    private(set) var ids: [ExecutionID] = []
    /// Open addressing, linear probing, a power of two at least twice `ids.count`: per slot the
    /// index into `ids` plus one (0: empty) in the low 32 bits and the hash's high 32 bits (the
    /// tag) above. The tag also picks the first slot, so growing the table moves entries without
    /// hashing any id again (a hot symbol's growth costs a pass over integers, not over strings).
    private var table: [UInt64] = []
    /// The count at which the next id doubles the table (at most half the table: linear probing
    /// always finds an empty slot).
    private var growAt: Int32 = 0
    /// The ids the set is meant to hold (its generation's size); more are taken, without jitter.
    let limit: Int32

    static let listLimit = 8

    /// An empty set meant to hold up to `limit` ids.
    init(limit: Int) {
        self.limit = Int32(clamping: max(1, limit))
    }

    /// A set of these ids, in this order (duplicates kept once), meant to hold up to `limit`.
    init(_ ids: [ExecutionID], limit: Int) {
        self.init(limit: limit)
        self.ids.reserveCapacity(ids.count)
        for id in ids { _ = insert(id, hash: Self.hash(id)) }
    }

    /// The number of ids held.
    var count: Int { ids.count }

    /// The number of slots of the table (0 while the ids are a plain list).
    var tableSize: Int { table.count }

    /// The id's `FastHash`.
    static func hash(_ id: ExecutionID) -> UInt64 { FastHash.of(id.rawValue) }

    func contains(_ id: ExecutionID, hash: UInt64) -> Bool {
        if table.isEmpty {
            for known in ids where known == id { return true }
            return false
        }
        let mask = table.count - 1
        let tag = hash >> 32
        var slot = Int(truncatingIfNeeded: tag) & mask
        while true {
            let entry = table[slot]
            if entry == 0 { return false }
            if entry >> 32 == tag, ids[Int(entry & 0xFFFF_FFFF) - 1] == id { return true }
            slot = (slot + 1) & mask
        }
    }

    /// Adds the id; false if it is already in.
    mutating func insert(_ id: ExecutionID, hash: UInt64) -> Bool {
        if contains(id, hash: hash) { return false }
        if table.isEmpty {
            ids.append(id)
            if ids.count > Self.listLimit {
                rebuild(capacity: Self.listLimit * 4)
                growAt = growthPoint(hash: hash)
            }
            return true
        }
        if ids.count >= Int(growAt) {
            grow()
            growAt = growthPoint(hash: hash)
        }
        ids.append(id)
        place(index: ids.count - 1, hash: hash)
        return true
    }

    /// Half the table, less a jitter below an eighth of it from the hash's low bits; just half
    /// once that holds `limit`.
    private func growthPoint(hash: UInt64) -> Int32 {
        let half = Int32(table.count / 2)
        guard half < limit else { return half }
        return half - Int32(truncatingIfNeeded: hash) & (half / 4 - 1)
    }

    /// Removes the id inserted last (linear probing: clearing the newest entry breaks no chain,
    /// since nothing was placed after it).
    mutating func removeLast(_ id: ExecutionID) {
        guard let last = ids.last, last == id else { return }
        let index = ids.count - 1
        ids.removeLast()
        guard !table.isEmpty else { return }
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: Self.hash(id) >> 32) & mask
        while table[slot] != 0 {
            if Int(table[slot] & 0xFFFF_FFFF) - 1 == index {
                table[slot] = 0
                return
            }
            slot = (slot + 1) & mask
        }
    }

    private mutating func place(index: Int, hash: UInt64) {
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: hash >> 32) & mask
        while table[slot] != 0 { slot = (slot + 1) & mask }
        table[slot] = (hash >> 32) << 32 | UInt64(index + 1)
    }

    /// Doubles the table, moving each entry by its tag (no id is hashed again), oldest first: the
    /// newest entry is still placed last, which `removeLast` relies on. The id list gets room for
    /// the new table's half at the same time, so it never reallocates on its own.
    private mutating func grow() {
        var byAge = [UInt64](repeating: 0, count: ids.count)
        for entry in table where entry != 0 { byAge[Int(entry & 0xFFFF_FFFF) - 1] = entry }
        var larger = [UInt64](repeating: 0, count: table.count * 2)
        ids.reserveCapacity(larger.count / 2)
        let mask = larger.count - 1
        for entry in byAge where entry != 0 {
            var slot = Int(truncatingIfNeeded: entry >> 32) & mask
            while larger[slot] != 0 { slot = (slot + 1) & mask }
            larger[slot] = entry
        }
        table = larger
    }

    private mutating func rebuild(capacity: Int) {
        var size = 16
        while size < capacity || size < ids.count * 2 { size *= 2 }
        table = [UInt64](repeating: 0, count: size)
        for index in ids.indices { place(index: index, hash: Self.hash(ids[index])) }
    }
}

/// What the machine keeps of an order it retired (its position closed, every order done): enough
/// to refuse a late report for it with a clear error, and for recovery to tell whether a broker
/// execution of it was booked.
public struct RetiredOrder: Sendable, Hashable, Codable {
    /// The order.
    public var id: OrderID
    /// Its position.
    public var positionID: PositionID
    /// The quantity booked for it.
    public var filled: Quantity
    /// The highest cumulative quantity the broker reported for it.
    public var maxCumulative: Quantity
    /// The serial of its first applied fill (0: none).
    var firstFillSerial: UInt64

    /// A retired order's record.
    init(id: OrderID, positionID: PositionID, filled: Quantity, maxCumulative: Quantity, firstFillSerial: UInt64) {
        self.id = id
        self.positionID = positionID
        self.filled = filled
        self.maxCumulative = maxCumulative
        self.firstFillSerial = firstFillSerial
    }
}

/// The retired orders a machine still remembers, oldest first, at most `capacity`.
struct RetiredOrders: Sendable {
    let capacity: Int
    private(set) var byID: [OrderID: RetiredOrder] = [:]
    /// Oldest first from `head`.
    private(set) var fifo: [OrderID] = []
    private var head = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    /// Remembers an order; forgets the oldest beyond the capacity.
    mutating func insert(_ order: RetiredOrder) {
        guard capacity > 0 else { return }
        if byID.updateValue(order, forKey: order.id) == nil { fifo.append(order.id) }
        while fifo.count - head > capacity {
            byID.removeValue(forKey: fifo[head])
            head += 1
        }
        if head > 64, head * 2 > fifo.count {
            fifo.removeFirst(head)
            head = 0
        }
    }

    /// The record of a retired order, if remembered.
    subscript(id: OrderID) -> RetiredOrder? { byID[id] }

    /// The records, oldest first.
    var ordered: [RetiredOrder] { fifo[head...].compactMap { byID[$0] } }

    /// The number remembered.
    var count: Int { fifo.count - head }

    /// True if a remembered retired order belongs to the position.
    func contains(position: PositionID) -> Bool {
        byID.values.contains { $0.positionID == position }
    }
}

/// A cheap, seeded 64-bit hash of a string's UTF-8 bytes, eight at a time, for the runtime's own
/// tables keyed by ids (execution ids, symbols), where `Hashable` would run SipHash over the
/// normalised string. Text with non-ASCII bytes takes `String`'s own hash: equal strings may
/// differ in bytes (Unicode normalisation), and the hash must agree with `==`.
package enum FastHash {
    /// The hash of `text`.
    package static func of(_ text: String) -> UInt64 {
        var text = text
        let hash = text.withUTF8 { bytes -> UInt64? in
            var hash = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
            var high: UInt64 = 0
            var index = 0
            let count = bytes.count
            guard let base = bytes.baseAddress else { return hash }
            while index + 8 <= count {
                let word = UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
                high |= word
                hash = (hash ^ word) &* 0xFF51_AFD7_ED55_8CCD
                hash ^= hash >> 32
                index += 8
            }
            if index < count {
                var word: UInt64 = 0
                var shift: UInt64 = 0
                while index < count {
                    word |= UInt64(base[index]) << shift
                    shift += 8
                    index += 1
                }
                high |= word
                hash = (hash ^ word) &* 0xC4CE_B9FE_1A85_EC53
            }
            guard high & 0x8080_8080_8080_8080 == 0 else { return nil }
            hash ^= hash >> 29
            hash = hash &* 0xFF51_AFD7_ED55_8CCD
            return hash ^ (hash >> 32)
        }
        if let hash { return hash }
        // Three characters are canonically equivalent to ASCII ones (U+037E ';', U+1FEF '`', and
        // the Kelvin sign U+212A 'K'): text that is ASCII but for them equals the ASCII text, so it
        // must hash as that text does. Any other non-ASCII text equals only non-ASCII text.
        var ascii = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0..<0x80: ascii.unicodeScalars.append(scalar)
            case 0x037E: ascii.append(";")
            case 0x1FEF: ascii.append("`")
            case 0x212A: ascii.append("K")
            default: return UInt64(truncatingIfNeeded: text.hashValue)
            }
        }
        return of(ascii)
    }

    private static let seed = UInt64.random(in: 1...UInt64.max)
}
