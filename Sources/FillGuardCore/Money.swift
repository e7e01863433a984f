/// An exact signed amount of money (cost basis, realized P&L), with 16 decimal places so that
/// any quantity times any price is represented without rounding.
public struct Money: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number of fractional digits money keeps (quantity's 8 plus price's 8).
    public static let decimalPlaces = 16

    /// The amount in units of 10^-16.
    public var units: Int128

    /// An amount from raw 10^-16 units.
    public init(units: Int128) { self.units = units }

    /// Parses a decimal string ("-250.5"); nil if it is not an exact decimal of at most 16 places.
    public init?(_ text: some StringProtocol) {
        guard case .success(let value) = DecimalText.parse(text, scale: Self.decimalPlaces) else { return nil }
        self.units = value
    }

    /// No money.
    public static let zero = Money(units: 0)

    /// The exact value of `quantity` (signed) shares at `price`.
    public static func value(of quantity: Quantity, at price: Price) -> Money {
        Money(units: Int128(quantity.units) * Int128(price.units))
    }

    /// The exact decimal text, shortest form ("-250", "12.345").
    public var description: String { DecimalText.format(units, scale: Self.decimalPlaces) }

    /// Orders amounts.
    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.units < rhs.units }
    /// Exact sum.
    public static func + (lhs: Money, rhs: Money) -> Money { Money(units: lhs.units + rhs.units) }
    /// Exact difference.
    public static func - (lhs: Money, rhs: Money) -> Money { Money(units: lhs.units - rhs.units) }
    /// Adds in place.
    public static func += (lhs: inout Money, rhs: Money) { lhs.units += rhs.units }
    /// Subtracts in place.
    public static func -= (lhs: inout Money, rhs: Money) { lhs.units -= rhs.units }
    /// Exact negation.
    public static prefix func - (value: Money) -> Money { Money(units: -value.units) }

    /// This amount divided by a quantity, as a price rounded half away from zero to 8 places
    /// (an average price from a cost basis). Nil for a zero quantity.
    public func perShare(_ quantity: Quantity) -> Price? {
        guard quantity.units != 0 else { return nil }
        let divisor = Int128(quantity.units)
        let quotient = units / divisor
        let remainder = units % divisor
        var rounded = quotient
        if remainder.magnitude * 2 >= divisor.magnitude {
            rounded += ((units < 0) != (divisor < 0)) ? -1 : 1
        }
        return Price(units: Int64(clamping: rounded.magnitude))
    }

    /// The share of this amount that `part` of `whole` represents, rounded to the nearest 10^-16,
    /// half away from zero (`self * part / whole` without overflow). Used to release cost basis on
    /// a partial close: truncating biased the realized P&L by up to 10^-16 one way.
    public func proportion(_ part: Quantity, of whole: Quantity) -> Money {
        precondition(whole.units != 0, "proportion of a zero whole")
        let divisor = Int128(whole.units).magnitude
        let negative = ((units < 0) != (part.units < 0)) != (whole.units < 0)
        let multiplier = UInt128(Int128(part.units).magnitude)
        let magnitude = units.magnitude
        let quotient = magnitude / divisor
        let product = (magnitude % divisor) * multiplier
        var share = quotient * multiplier + product / divisor
        if (product % divisor) * 2 >= divisor { share += 1 }
        return Money(units: negative ? -Int128(share) : Int128(share))
    }
}
