/// What a caller asks for when opening a position: an entry, optional scale-ins, and the
/// protective prices. Validated by `BracketSpec.validate()`.
public struct BracketSpec: Sendable, Hashable, Codable {
    /// One scale-in ("double down") order.
    public struct ScaleIn: Sendable, Hashable, Codable {
        /// Its quantity.
        public var quantity: Quantity
        /// Its type (usually a limit below the entry for a long).
        public var type: OrderType
        /// A scale-in.
        public init(quantity: Quantity, type: OrderType) {
            self.quantity = quantity
            self.type = type
        }
    }

    /// The caller's name for the position.
    public var positionID: PositionID
    /// The instrument.
    public var symbol: Symbol
    /// The entry's side: buy opens a long, sell a short.
    public var side: Side
    /// The entry quantity.
    public var quantity: Quantity
    /// The entry type (market by default).
    public var entryType: OrderType
    /// The stop-loss trigger price, if the bracket has one.
    public var stopLoss: Price?
    /// The take-profit limit price, if the bracket has one.
    public var takeProfit: Price?
    /// Scale-in orders, placed with the entry.
    public var scaleIns: [ScaleIn]
    /// Time in force of every order of the bracket.
    public var timeInForce: TimeInForce

    /// A bracket specification.
    public init(positionID: PositionID, symbol: Symbol, side: Side, quantity: Quantity, entryType: OrderType = .market,
                stopLoss: Price? = nil, takeProfit: Price? = nil, scaleIns: [ScaleIn] = [], timeInForce: TimeInForce = .goodTillCancel) {
        self.positionID = positionID
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.entryType = entryType
        self.stopLoss = stopLoss
        self.takeProfit = takeProfit
        self.scaleIns = scaleIns
        self.timeInForce = timeInForce
    }

    /// The most scale-in orders one bracket may have: each is an order at the broker, and
    /// the protective orders are placed after the bracket's orders (beyond a few hundred, a
    /// filled entry would wait for them without cover).
    public static let maximumScaleIns = 100

    /// Checks quantities, prices and their order (for a long: stop < take-profit; for a short:
    /// stop > take-profit), and the number of scale-ins. Throws the first problem found.
    public func validate() throws(InputError) {
        guard quantity.isPositive, quantity <= .maximum else {
            throw InputError(.invalidQuantity, "entry quantity must be positive and at most \(Quantity.maximum), got \(quantity)")
        }
        try Self.validate(entryType, what: "entry")
        guard scaleIns.count <= Self.maximumScaleIns else {
            throw InputError(.invalidBracket, "a bracket has at most \(Self.maximumScaleIns) scale-ins, got \(scaleIns.count)")
        }
        for (index, scaleIn) in scaleIns.enumerated() {
            guard scaleIn.quantity.isPositive, scaleIn.quantity <= .maximum else {
                throw InputError(.invalidQuantity, "scaleIns[\(index)] quantity must be positive, got \(scaleIn.quantity)")
            }
            try Self.validate(scaleIn.type, what: "scaleIns[\(index)]")
        }
        // The whole position the bracket can build must be a quantity too: every sum over its
        // fills (net, protective sizes) stays in range.
        var total = quantity.units
        for (index, scaleIn) in scaleIns.enumerated() {
            total += scaleIn.quantity.units
            guard total <= Quantity.maximum.units else {
                throw InputError(.invalidQuantity, "entry and scale-ins together must be at most \(Quantity.maximum), and scaleIns[\(index)] takes them beyond it")
            }
        }
        guard !positionID.rawValue.isEmpty, !symbol.name.isEmpty else {
            throw InputError(.malformed, "a bracket needs a position id and a symbol")
        }
        // A control character (a NUL, a line break) is no ticker, and a journal's storage or a
        // protocol could cut the symbol there, mixing it up with another.
        guard !symbol.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw InputError(.malformed, "symbol \(symbol.name.debugDescription) contains a control character")
        }
        for (name, price) in [("stopLoss", stopLoss), ("takeProfit", takeProfit)] {
            if let price, price.units <= 0 || price > .maximum {
                throw InputError(.invalidPrice, "\(name) must be positive, got \(price)")
            }
        }
        if let stop = stopLoss, let target = takeProfit {
            let ordered = side == .buy ? stop < target : stop > target
            guard ordered else {
                let relation = side == .buy ? "below" : "above"
                throw InputError(.invalidBracket, "for a \(side == .buy ? "long" : "short") the stop-loss \(stop) must be \(relation) the take-profit \(target)")
            }
        }
    }

    /// Checks the protective orders against the bracket's own prices and time in force, where a
    /// bracket comes in (like `validateNames()`, not by the state machine: a journal that recorded
    /// such a bracket before this check existed still re-derives as it was). For a long the
    /// stop-loss must be below every price of the entry and of the scale-ins, and the take-profit
    /// above the entry's and every scale-in limit's (for a short, the other way round): a stop on
    /// the wrong side triggers, and
    /// a take-profit on the wrong side fills, as soon as the position opens. An immediate-or-cancel
    /// bracket may have no stop-loss, take-profit or scale-in: every order of a bracket takes its
    /// time in force, and those would expire at once, leaving the position unprotected.
    public func validateSides() throws(InputError) {
        if timeInForce == .immediateOrCancel, stopLoss != nil || takeProfit != nil || !scaleIns.isEmpty {
            throw InputError(.invalidBracket, "an immediate-or-cancel bracket's stop-loss, take-profit and scale-ins would be immediate-or-cancel too and expire at once; use day or goodTillCancel")
        }
        let long = side == .buy
        let kind = long ? "long" : "short"
        let entryPrices = entryType.prices
        if let stop = stopLoss {
            var opening = entryPrices.map { ("entry", $0) }
            for (index, scaleIn) in scaleIns.enumerated() { opening += scaleIn.type.prices.map { ("scale-in \(index)", $0) } }
            for (name, price) in opening where long ? stop >= price : stop <= price {
                throw InputError(.invalidBracket, "for a \(kind) the stop-loss \(stop) must be \(long ? "below" : "above") the \(name)'s price \(price): it would trigger as soon as the position opens")
            }
        }
        if let target = takeProfit {
            // Against the entry's prices, and each scale-in limit's (a resting limit says where the
            // market is once it fills); not a scale-in stop's (a pyramid's buy stop above the
            // take-profit is a plan, not a mistake).
            var opening = entryPrices.map { ("entry", $0) }
            for (index, scaleIn) in scaleIns.enumerated() {
                if case .limit(let price) = scaleIn.type { opening.append(("scale-in \(index)", price)) }
            }
            for (name, price) in opening where long ? target <= price : target >= price {
                throw InputError(.invalidBracket, "for a \(kind) the take-profit \(target) must be \(long ? "above" : "below") the \(name)'s price \(price): it would fill as soon as the position opens")
            }
        }
    }

    /// Checks that the symbol and the position id are not empty, hold no control or invisible
    /// character (line and paragraph separators, zero-width and direction marks: "GLD" and
    /// "G\u{200B}LD" would look alike but be two symbols) and do not start or end with white
    /// space ("GLD " would be another symbol than "GLD").
    /// Called where a bracket comes in (`FillManager.open`, replay), not by the state machine: a
    /// journal that recorded such a bracket before this check existed still re-derives as it was.
    public func validateNames() throws(InputError) {
        try Self.validateName(positionID.rawValue, as: "position id")
        try Self.validateName(symbol.name, as: "symbol")
    }

    /// Checks one name (`as`: what it names, for the message) by the rules of `validateNames`:
    /// also for a name that refers to a bracket (a trace's scripted fault), which could never
    /// match one otherwise.
    public static func validateName(_ text: String, as name: String) throws(InputError) {
        guard let first = text.unicodeScalars.first, let last = text.unicodeScalars.last else {
            throw InputError(.malformed, "\(name) must not be empty")
        }
        if let hidden = text.unicodeScalars.first(where: Self.isControlOrInvisible) {
            let code = String(hidden.value, radix: 16, uppercase: true)
            let kind = hidden.properties.generalCategory == .control ? "a control character" : "an invisible character"
            throw InputError(.malformed, "\(name) \(Self.shown(text)) contains \(kind) (U+\(String(repeating: "0", count: max(0, 4 - code.count)) + code))")
        }
        guard !first.properties.isWhitespace, !last.properties.isWhitespace else {
            throw InputError(.malformed, "\(name) \(Self.shown(text)) starts or ends with white space")
        }
    }

    /// `text` quoted, with every control or invisible character written as `\u{HEX}`, so that a
    /// message shows what the name holds.
    private static func shown(_ text: String) -> String {
        var shown = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": shown += "\\\""
            case "\\": shown += "\\\\"
            case "\n": shown += "\\n"
            case "\r": shown += "\\r"
            case "\t": shown += "\\t"
            case "\0": shown += "\\0"
            case _ where isControlOrInvisible(scalar): shown += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: shown.unicodeScalars.append(scalar)
            }
        }
        return shown + "\""
    }

    /// A control character, a line or paragraph separator, or a format character (zero-width
    /// spaces and joiners, direction marks and overrides): nothing a name should hold.
    private static func isControlOrInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }

    private static func validate(_ type: OrderType, what: String) throws(InputError) {
        let prices: [Price]
        switch type {
        case .market: prices = []
        case .limit(let price), .stop(let price): prices = [price]
        case .stopLimit(let stop, let limit): prices = [stop, limit]
        }
        for price in prices where price.units <= 0 || price > .maximum {
            throw InputError(.invalidPrice, "\(what) price must be positive, got \(price)")
        }
    }
}
