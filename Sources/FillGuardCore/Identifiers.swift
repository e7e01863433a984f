/// An instrument's ticker ("AAPL"). One position per symbol at a time (netting account).
public struct Symbol: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral, Comparable {
    /// The ticker text.
    public let name: String
    /// A symbol from its ticker.
    public init(_ name: String) { self.name = name }
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
    public init(_ rawValue: String) { self.rawValue = rawValue }
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
    public init(_ rawValue: String) { self.rawValue = rawValue }
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
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// An execution id from a literal, for tests and examples.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The identifier text.
    public var description: String { rawValue }
}
