/// An exact quantity of an instrument (shares, contracts), with 8 decimal places. Signed: a net
/// position is negative when short.
public struct Quantity: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Units per whole share: quantities are stored as integer multiples of 10^-8.
    public static let unitsPerShare: Int64 = 100_000_000
    /// The number of fractional digits a quantity keeps.
    public static let decimalPlaces = 8

    /// The quantity in units of 10^-8 shares.
    public var units: Int64

    /// A quantity from raw 10^-8 units.
    public init(units: Int64) { self.units = units }

    /// A whole number of shares. One too large to hold saturates (far beyond `maximum`, so
    /// that it is refused as an invalid quantity where it comes in) instead of trapping.
    public init(_ shares: Int) {
        let (units, overflow) = Int64(shares).multipliedReportingOverflow(by: Self.unitsPerShare)
        self.units = overflow ? (shares < 0 ? -Int64.max : Int64.max) : units
    }

    /// Parses a decimal string ("300", "0.5"); nil if it is not an exact decimal of at most 8
    /// places or its magnitude is above `maximum`.
    public init?(_ text: some StringProtocol) {
        guard case .success(let value) = DecimalText.parse(text, scale: Self.decimalPlaces),
              value.magnitude <= UInt128(Self.maximum.units), let units = Int64(exactly: value) else { return nil }
        self.units = units
    }

    /// The largest quantity FillGuard accepts (one billion shares): sums of accepted quantities
    /// can never overflow.
    public static let maximum = Quantity(units: 1_000_000_000 * unitsPerShare)

    /// True when the magnitude is within `maximum`.
    public var isWithinRange: Bool { units >= -Self.maximum.units && units <= Self.maximum.units }

    /// Zero shares.
    public static let zero = Quantity(units: 0)

    /// The absolute value, for sizing protective orders from a signed net position.
    public var magnitude: Quantity { Quantity(units: units.magnitude > UInt64(Int64.max) ? Int64.max : abs(units)) }
    /// True when the quantity is above zero.
    public var isPositive: Bool { units > 0 }
    /// True when the quantity is zero.
    public var isZero: Bool { units == 0 }

    /// The exact decimal text, shortest form ("300", "12.5").
    public var description: String { DecimalText.format(Int128(units), scale: Self.decimalPlaces) }

    /// Orders quantities by size.
    public static func < (lhs: Quantity, rhs: Quantity) -> Bool { lhs.units < rhs.units }
    /// Exact sum.
    public static func + (lhs: Quantity, rhs: Quantity) -> Quantity { Quantity(units: lhs.units + rhs.units) }
    /// Exact difference.
    public static func - (lhs: Quantity, rhs: Quantity) -> Quantity { Quantity(units: lhs.units - rhs.units) }
    /// Exact negation.
    public static prefix func - (value: Quantity) -> Quantity { Quantity(units: -value.units) }
    /// Adds in place.
    public static func += (lhs: inout Quantity, rhs: Quantity) { lhs.units += rhs.units }
    /// Subtracts in place.
    public static func -= (lhs: inout Quantity, rhs: Quantity) { lhs.units -= rhs.units }
}

extension Quantity: ExpressibleByIntegerLiteral {
    /// A whole number of shares from a literal, for tests and examples.
    public init(integerLiteral value: Int) { self.init(value) }
}
