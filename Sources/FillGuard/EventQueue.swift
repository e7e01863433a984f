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

    /// Makes room for at least `minimum` envelopes.
    mutating func reserve(_ minimum: Int) {
        guard minimum > capacity else { return }
        var size = Swift.max(4, capacity)
        while size < minimum { size *= 2 }
        grow(to: size)
    }

    /// Exchanges contents (buffers) with another queue: O(1).
    mutating func swapContents(with other: inout EventQueue) {
        swap(&buffer, &other.buffer)
        swap(&capacity32, &other.capacity32)
        swap(&head32, &other.head32)
        swap(&count32, &other.count32)
    }

    /// Drops every envelope and frees the buffer.
    mutating func removeAllAndRelease() {
        while popFirst() != nil {}
        buffer?.deallocate()
        buffer = nil
        capacity = 0
        head = 0
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
