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
    var current: Set<ExecutionID> = []
    /// The older generation.
    var previous: Set<ExecutionID> = []
    /// The serial of the last applied execution: the number of executions ever applied.
    var applied: UInt64 = 0
    /// The serial of the first execution of `previous`: every execution from here on is remembered.
    var previousStart: UInt64 = 1
    /// The serial of the first execution of `current`.
    var currentStart: UInt64 = 1

    init(generationSize: Int) {
        self.generationSize = max(1, generationSize)
    }

    /// True if the id is remembered as applied.
    func contains(_ id: ExecutionID) -> Bool {
        current.contains(id) || previous.contains(id)
    }

    /// Reserves `id` for an execution being booked: false if it is remembered already. Undo with
    /// `release(_:)` if the execution is then refused; confirm with `commit()`.
    mutating func reserve(_ id: ExecutionID) -> Bool {
        if previous.contains(id) { return false }
        return current.insert(id).inserted
    }

    /// Forgets a reservation whose execution was refused.
    mutating func release(_ id: ExecutionID) {
        current.remove(id)
    }

    /// Confirms the reserved execution: returns its serial, and rotates the generations when the
    /// current one is full.
    mutating func commit() -> UInt64 {
        applied += 1
        let serial = applied
        if current.count >= generationSize {
            previous = current
            previousStart = currentStart
            current = Set(minimumCapacity: generationSize)
            currentStart = applied + 1
        }
        return serial
    }

    /// True when every execution from `serial` on is still remembered.
    func remembersAll(since serial: UInt64) -> Bool { serial >= previousStart }

    /// The number of ids held.
    var count: Int { current.count + previous.count }
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
