// Codable conformances of the value types, as single values: a symbol or id encodes as its
// text, a quantity, price or amount as its integer units. Journals and snapshots use them.

extension Symbol: Codable {
    /// Decodes a symbol from its ticker text.
    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    /// Encodes the ticker text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

extension PositionID: Codable {
    /// Decodes a position id from its text.
    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    /// Encodes the id's text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension OrderID: Codable {
    /// Decodes an order id from its text.
    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    /// Encodes the id's text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension ExecutionID: Codable {
    /// Decodes an execution id from its text.
    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    /// Encodes the id's text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension Quantity: Codable {
    /// Decodes a quantity from its integer units (1e-8 share).
    public init(from decoder: any Decoder) throws { self.init(units: try decoder.singleValueContainer().decode(Int64.self)) }
    /// Encodes the integer units.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(units)
    }
}

extension Price: Codable {
    /// Decodes a price from its integer units (1e-8).
    public init(from decoder: any Decoder) throws { self.init(units: try decoder.singleValueContainer().decode(Int64.self)) }
    /// Encodes the integer units.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(units)
    }
}

extension Money: Codable {
    /// Decodes an amount from its integer units (1e-16), written as decimal text (exact at any size).
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let units = Int128(text) else {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "not an amount: \(text)"))
        }
        self.init(units: units)
    }
    /// Encodes the integer units as decimal text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(units))
    }
}
