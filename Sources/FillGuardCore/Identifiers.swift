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
    /// Equal when the UTF-8 bytes are (a broker's ids are byte strings: "é" and "e\u{301}" differ).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.name.hasSameBytes(as: rhs.name) }
    /// Hashes the UTF-8 bytes.
    public func hash(into hasher: inout Hasher) { name.hashBytes(into: &hasher) }
    /// Orders symbols by ticker.
    public static func < (lhs: Symbol, rhs: Symbol) -> Bool { lhs.name.utf8.lexicographicallyPrecedes(rhs.name.utf8) }
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
    /// Equal when the UTF-8 bytes are (a broker's ids are byte strings: "é" and "e\u{301}" differ).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue.hasSameBytes(as: rhs.rawValue) }
    /// Hashes the UTF-8 bytes.
    public func hash(into hasher: inout Hasher) { rawValue.hashBytes(into: &hasher) }
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
    /// Equal when the UTF-8 bytes are (a broker's ids are byte strings: "é" and "e\u{301}" differ).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue.hasSameBytes(as: rhs.rawValue) }
    /// Hashes the UTF-8 bytes.
    public func hash(into hasher: inout Hasher) { rawValue.hashBytes(into: &hasher) }
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
    /// Equal when the UTF-8 bytes are (a broker's ids are byte strings: "é" and "e\u{301}" differ).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue.hasSameBytes(as: rhs.rawValue) }
    /// Hashes the UTF-8 bytes.
    public func hash(into hasher: inout Hasher) { rawValue.hashBytes(into: &hasher) }
}

extension String {
    /// Whether the two texts are the same bytes (`==` on strings also takes canonically
    /// equivalent texts as equal). The string comparison goes first, being fast and ruling out
    /// most; texts it finds equal then have their bytes compared.
    @inline(__always)
    func hasSameBytes(as other: String) -> Bool {
        guard self == other else { return false }
        return utf8.elementsEqual(other.utf8)
    }

    /// Feeds the UTF-8 bytes to `hasher`.
    @inline(__always)
    func hashBytes(into hasher: inout Hasher) {
        var text = self
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
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
