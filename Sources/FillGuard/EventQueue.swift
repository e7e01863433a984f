/// A lane's FIFO of envelopes: a ring buffer that takes each envelope by move (`consuming`), where
/// `Deque.append` borrows its argument and copies it (an envelope holds a report with several
/// references: a copy retains each, the caller's destroy releases each). Noncopyable: it owns its
/// buffer, freed with it.
struct EventQueue: ~Copyable {
    private var buffer: UnsafeMutablePointer<SymbolLane.Envelope>?
    // 32-bit: every lane holds two queues, most of them empty.
    /// A power of two (or 0).
    private var capacity32: Int32 = 0
    private var head32: Int32 = 0
    private var count32: Int32 = 0

    private var capacity: Int {
        get { Int(capacity32) }
        set { capacity32 = Int32(newValue) }
    }
    private var head: Int {
        get { Int(head32) }
        set { head32 = Int32(truncatingIfNeeded: newValue) }
    }
    /// The number of envelopes queued.
    private(set) var count: Int {
        get { Int(count32) }
        set { count32 = Int32(newValue) }
    }

    init() {}

    deinit {
        guard let buffer else { return }
        var index = head
        for _ in 0..<count {
            (buffer + index).deinitialize(count: 1)
            index = (index + 1) & (capacity - 1)
        }
        buffer.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    /// Appends an envelope, moving it in.
    mutating func append(_ envelope: consuming SymbolLane.Envelope) {
        if count == capacity { grow(to: Swift.max(4, capacity * 2)) }
        (buffer! + ((head + count) & (capacity - 1))).initialize(to: envelope)
        count += 1
    }

    /// Removes and returns the oldest envelope (moved out).
    mutating func popFirst() -> SymbolLane.Envelope? {
        guard count > 0, let buffer else { return nil }
        let envelope = (buffer + head).move()
        head = (head + 1) & (capacity - 1)
        count -= 1
        return envelope
    }

    /// Whether the queue holds a buffer (an idle lane's queues hold none).
    var hasBuffer: Bool { buffer != nil }

    /// Gives an empty queue with no buffer the empty `buffer` of `capacity` envelopes (a power of
    /// two) from `EnvelopeBufferPool`.
    mutating func install(_ buffer: UnsafeMutablePointer<SymbolLane.Envelope>, capacity: Int) {
        precondition(self.buffer == nil && count == 0 && capacity > 0 && capacity & (capacity - 1) == 0,
                     "EventQueue.install: the queue has a buffer, or the capacity is not a power of two")
        self.buffer = buffer
        self.capacity = capacity
        head = 0
    }

    /// Drops every envelope and hands the buffer back when it has `capacity` envelopes (for
    /// `EnvelopeBufferPool`); a buffer of another size is freed. The queue is left without one.
    mutating func removeAllAndTakeBuffer(ifCapacity capacity: Int) -> UnsafeMutablePointer<SymbolLane.Envelope>? {
        while popFirst() != nil {}
        guard let buffer else { return nil }
        let taken = self.capacity == capacity ? buffer : nil
        if taken == nil { buffer.deallocate() }
        self.buffer = nil
        self.capacity = 0
        head = 0
        return taken
    }

    /// Exchanges contents (buffers) with another queue: O(1).
    mutating func swapContents(with other: inout EventQueue) {
        swap(&buffer, &other.buffer)
        swap(&capacity32, &other.capacity32)
        swap(&head32, &other.head32)
        swap(&count32, &other.count32)
    }

    private mutating func grow(to size: Int) {
        let grown = UnsafeMutablePointer<SymbolLane.Envelope>.allocate(capacity: size)
        if let buffer {
            // Move the elements out in order: from head to the end of the buffer, then the wrap.
            let first = Swift.min(count, capacity - head)
            grown.moveInitialize(from: buffer + head, count: first)
            if count > first { (grown + first).moveInitialize(from: buffer, count: count - first) }
            buffer.deallocate()
        }
        buffer = grown
        capacity = size
        head = 0
    }
}
