/// An exact, positive price per share with 8 decimal places.
public struct Price: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number of fractional digits a price keeps.
    public static let decimalPlaces = 8
    /// Units per currency unit: prices are stored as integer multiples of 10^-8.
    public static let unitsPerWhole: Int64 = 100_000_000

    /// The price in units of 10^-8.
    public var units: Int64

    /// A price from raw 10^-8 units.
    public init(units: Int64) { self.units = units }

    /// Parses a decimal string ("248.10"); nil if it is not an exact decimal of at most 8 places
    /// or its magnitude is above `maximum`.
    public init?(_ text: some StringProtocol) {
        guard case .success(let value) = DecimalText.parse(text, scale: Self.decimalPlaces),
              value.magnitude <= UInt128(Self.maximum.units), let units = Int64(exactly: value) else { return nil }
        self.units = units
    }

    /// The largest price FillGuard accepts (one billion).
    public static let maximum = Price(units: 1_000_000_000 * unitsPerWhole)

    /// The exact decimal text, shortest form ("248.1").
    public var description: String { DecimalText.format(Int128(units), scale: Self.decimalPlaces) }

    /// Orders prices.
    public static func < (lhs: Price, rhs: Price) -> Bool { lhs.units < rhs.units }
}

extension Price: ExpressibleByIntegerLiteral {
    /// A whole price from a literal (`stopLoss: 245`); fractional prices are parsed from text.
    /// One too large to hold saturates (and is refused as an invalid price where it comes in).
    public init(integerLiteral value: Int64) {
        let (units, overflow) = value.multipliedReportingOverflow(by: Self.unitsPerWhole)
        self.init(units: overflow ? (value < 0 ? -Int64.max : Int64.max) : units)
    }
}
