import FillGuardCore

/// One difference between the journal's state and the broker's that reconciliation found, and
/// what it did about it. Every correction is logged, counted (`fillguard_reconcile_corrections`)
/// and published (`FillManager.corrections()`).
public struct ReconciliationCorrection: Sendable, Hashable, CustomStringConvertible {
    /// What kind of difference.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A fill the broker made while FillGuard was down (or before its input was durable): applied.
        case adoptedFill
        /// An operation sent before the stop, outcome unknown: the broker was asked and the answer applied.
        case resolvedOperation
        /// An order FillGuard thought live had ended at the broker: its end was applied.
        case orderEndedAtBroker
        /// An order FillGuard thought live is not known to the broker: treated as ended, re-planned.
        case orderMissingAtBroker
        /// A live order's size at the broker differs from FillGuard's (left as is; a person should look).
        case sizeDiffers
        /// A live order at the broker that no journal record knows: handled per the policy.
        case unknownBrokerOrder
        /// A live order at the broker that FillGuard's record has ended (cancelled, rejected,
        /// filled or retired): the broker never applied that end. Cancelled, whatever the policy.
        case endedOrderLiveAtBroker
        /// A fill at the broker for an order no journal record knows (not applied).
        case unknownExecution
        /// An order's filled quantity at the broker exceeds what the journal and the broker's
        /// execution reports account for (reports lost): not applied, since the price is unknown.
        case unreportedFill
        /// The broker's net position differs from FillGuard's after reconciliation.
        case positionMismatch
        /// A retry or re-arm whose timer died with the process: resumed now.
        case resumedWork
        /// The broker could not be asked (no query support or it failed): not reconciled.
        case notReconciled
        /// An entry or scale-in the broker never got, refused rather than sent after the restart
        /// (`UnsentEntryPolicy.refuse`).
        case entryRefused
    }

    /// What kind of difference.
    public var kind: Kind
    /// The symbol concerned.
    public var symbol: Symbol?
    /// The order concerned, if one.
    public var orderID: OrderID?
    /// What was found and done, for a person.
    public var message: String

    /// A correction.
    public init(kind: Kind, symbol: Symbol?, orderID: OrderID? = nil, message: String) {
        self.kind = kind
        self.symbol = symbol
        self.orderID = orderID
        self.message = message
    }

    /// "adoptedFill AAPL P1-en1: ...".
    public var description: String {
        "\(kind.rawValue)\(symbol.map { " \($0)" } ?? "")\(orderID.map { " \($0)" } ?? ""): \(message)"
    }
}

/// What `FillManager.recover()` did.
public struct RecoveryReport: Sendable {
    /// Symbols rebuilt from the journal.
    public var symbols = 0
    /// Positions rebuilt.
    public var positions = 0
    /// Snapshots loaded.
    public var snapshotsLoaded = 0
    /// Input and intent records replayed after the snapshots.
    public var recordsReplayed = 0
    /// Time to read the journal and rebuild the state (before reconciliation).
    public var rebuildDuration: Duration = .zero
    /// Time to reconcile with the broker.
    public var reconcileDuration: Duration = .zero
    /// Repairs made to a damaged journal (a torn tail dropped), in words.
    public var notices: [String] = []
    /// Every difference reconciliation found and what it did.
    public var corrections: [ReconciliationCorrection] = []
    /// Symbols whose operations stay held after a `positionMismatch` that FillGuard's orders could
    /// make worse (the broker flat, on the other side, or holding less): nothing is sent for them
    /// until `FillManager.releaseHeldOperations(of:)`.
    public var heldSymbols: [Symbol] = []
    /// Live orders at the broker that no journal record knows, whose ids are of FillGuard's
    /// making (`SymbolStateMachine.positionID(ofOrder:)`; other programs' orders are only
    /// reported), and that recovery left working (the `unknownOrders` policy `.leave`, one
    /// `.adopt` could not adopt, or a failed `.cancel`), per symbol: no bracket opens beside
    /// them while the broker still works one (`unknownOrdersLive`), until
    /// `FillManager.releaseUnknownOrders(of:)`.
    public var unknownLiveOrders: [Symbol: [OrderID]] = [:]

    /// An empty report.
    public init() {}
}

/// What recovery does with a symbol whose net at the broker still differs from the journal's
/// after reconciliation (`positionMismatch`), when orders sized to FillGuard's net could cover more
/// than the broker's position: the broker flat, on the other side or holding less, or FillGuard
/// flat beside a position at the broker. (A broker holding more on the same side, as when someone
/// else trades the account too, is only reported: FillGuard's orders cannot over-cover it.)
public enum PositionMismatchPolicy: String, Sendable, Hashable, CaseIterable {
    /// Send nothing for the symbol (new orders, resizes, cancels) until
    /// `FillManager.releaseHeldOperations(of:)`: a person looks first.
    case hold
    /// Report it and carry on with FillGuard's state, as if they agreed.
    case proceed
}

/// What recovery does with an entry or scale-in the broker never got: never sent before the
/// stop, sent without an answer and not at the broker, or waiting out a retry. The journal holds
/// no time, so it cannot tell a restart a second later from one a day later.
public enum UnsentEntryPolicy: String, Sendable, Hashable, CaseIterable {
    /// Send it once reconciliation is done, as the bracket asked (for a restart soon after the stop).
    case send
    /// Refuse it (`entryRefused`, and an `entryRejected` alert): a strategy whose entries must not
    /// go late, at another market, opens again if it still wants the position.
    case refuse
}

extension UnsentEntryPolicy {
    /// Why recovery refuses an entry or scale-in (`.refuse`): the answer it is ended with.
    static let refusal = "not at the broker after the restart, and FillGuard does not send an entry or scale-in that late (unsentEntries: refuse)"
}

/// What to do with a live order at the broker that no journal record knows (placed by hand or
/// by another program on the same account).
public enum UnknownOrderPolicy: String, Sendable, Hashable, CaseIterable {
    /// Leave it working and report it.
    case leave
    /// Cancel it and report it.
    case cancel
    /// Take it into the symbol's open position as its stop-loss or take-profit (a stop or limit
    /// on the protective side, no fills yet); a duplicate of a live role is cancelled. Orders
    /// that cannot be adopted are left working and reported.
    case adopt
}
