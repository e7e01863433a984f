/// An instrument's ticker ("AAPL"). One position per symbol at a time (netting account).
public struct Symbol: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral, Comparable {
    /// The ticker text.
    public let name: String
    /// A symbol from its ticker.
    public init(_ name: String) { self.name = name.compacted }
    /// A symbol from a literal, for tests and examples.
    public init(stringLiteral value: String) { self.name = value }
    /// The ticker text.
    public var description: String { name }
    /// Orders symbols by ticker.
    public static func < (lhs: Symbol, rhs: Symbol) -> Bool { lhs.name < rhs.name }
}

/// The caller's name for a position (a bracket): "P1".
public struct PositionID: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The identifier text.
    public let rawValue: String
    /// A position id from its text.
    public init(_ rawValue: String) { self.rawValue = rawValue.compacted }
    /// A position id from a literal, for tests and examples.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The identifier text.
    public var description: String { rawValue }
}

/// A client order id: FillGuard's name for one order at the broker; stable across modifies.
public struct OrderID: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The identifier text.
    public let rawValue: String
    /// An order id from its text.
    public init(_ rawValue: String) { self.rawValue = rawValue.compacted }
    /// An order id from a literal, for tests and examples.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The identifier text.
    public var description: String { rawValue }
}

/// A broker's execution id: unique per fill; a repeat of one is a duplicate report.
public struct ExecutionID: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The identifier text.
    public let rawValue: String
    /// An execution id from its text.
    public init(_ rawValue: String) { self.rawValue = rawValue.compacted }
    /// An execution id from a literal, for tests and examples.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The identifier text.
    public var description: String { rawValue }
    /// Equal when the UTF-8 bytes are: a broker's execution ids are byte strings, so "é" and
    /// "e\u{301}" are two fills, not a repeat (`==` on strings would take them as one).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue.hasSameBytes(as: rhs.rawValue) }
}

extension String {
    /// Whether the two texts are the same bytes (`==` on strings also takes canonically
    /// equivalent texts as equal). The string comparison rules out all but equal texts, whose
    /// UTF-8 buffers are then compared eight bytes at a time. The string hash stays valid: same
    /// bytes, same string.
    @inline(__always)
    func hasSameBytes(as other: String) -> Bool {
        guard self == other else { return false }
        var lhs = self
        var rhs = other
        return lhs.withUTF8 { a in
            rhs.withUTF8 { b in
                guard a.count == b.count else { return false }
                guard let x = a.baseAddress, let y = b.baseAddress else { return true }
                let count = a.count
                var index = 0
                while index + 8 <= count {
                    if UnsafeRawPointer(x + index).loadUnaligned(as: UInt64.self) != UnsafeRawPointer(y + index).loadUnaligned(as: UInt64.self) {
                        return false
                    }
                    index += 8
                }
                while index < count {
                    if x[index] != y[index] { return false }
                    index += 1
                }
                return true
            }
        }
    }

    /// The same text, stored inline when it is short (up to 15 UTF-8 bytes). Text built by
    /// interpolation lives on the heap even when short; an id held inline costs no allocation
    /// and no reference counting each time it is copied (ids are copied on every event).
    var compacted: String {
        guard utf8.count <= 15 else { return self }
        var text = self
        return text.withUTF8 { String(decoding: $0, as: UTF8.self) }
    }
}
