import FillGuardCore

/// The symbols a session does not open brackets on for now: the manager refused one there
/// (`unknownOrdersLive`: the exchange works orders of FillGuard's making that the journal lost),
/// each tried again a second later, when those orders may have ended.
struct UnknownOrderWaits {
    /// When each waiting symbol may be tried again.
    private var until: [Symbol: ContinuousClock.Instant] = [:]

    /// True while `symbol` waits.
    func waits(_ symbol: Symbol, now: ContinuousClock.Instant) -> Bool {
        until[symbol].map { now < $0 } ?? false
    }

    /// Takes an open's refusal: true (the symbol waits a second) for `unknownOrdersLive`, false
    /// for any other error, which the caller reports.
    mutating func noteRefusal(_ error: InputError, of symbol: Symbol, now: ContinuousClock.Instant) -> Bool {
        guard error.code == .unknownOrdersLive else { return false }
        until[symbol] = now + .seconds(1)
        return true
    }
}
