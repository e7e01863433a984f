import FillGuardCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A stress run like RandomInterleaving, but permanent modify/submit refusals are frequent
/// (a failed resize up is replaced), the flipped-position cover is random, and two stricter checks run: (a) whenever the
/// machine is at rest (nothing in flight, ready or retrying) and all reports are delivered, no role
/// covers MORE than |net| at the broker (over-cover beyond a round trip), and (b) after re-arm
/// everything is exactly protected.
@Suite("Stress: frequent permanent refusals, a random flipped-position cover")
struct PermanentRefusalStressTests {
    static let cases: Int = {
        if let text = getenv("FILLGUARD_STRESS_CASES"), let value = Int(String(cString: text)), value > 0 { return value }
        return 2_000
    }()
    static let firstSeed: UInt64 = {
        if let text = getenv("FILLGUARD_STRESS_SEED"), let value = UInt64(String(cString: text)) { return value }
        return 1
    }()

    @Test("seeded scenarios (FILLGUARD_STRESS_CASES, default 2,000): at rest nothing over-covers; after the re-arm everything is exactly protected")
    func stress() {
        var failures = 0
        var kinds: [String: Int] = [:]
        var examples: [String: UInt64] = [:]
        var firstDump: String?
        for seed in Self.firstSeed..<(Self.firstSeed + UInt64(Self.cases)) {
            var scenario = StressScenario(seed: seed)
            let problems = scenario.run()
            if !problems.isEmpty {
                failures += 1
                if firstDump == nil { firstDump = "seed \(seed): \(problems.prefix(5))\n\(scenario.dump())" }
                for problem in Set(problems.map { StressScenario.kind($0) }) {
                    kinds[problem, default: 0] += 1
                    if examples[problem] == nil { examples[problem] = seed }
                }
            }
        }
        let summary = kinds.sorted { $0.value > $1.value }.map { "\($0.value)x [seed \(examples[$0.key]!)] \($0.key)" }.joined(separator: "\n")
        #expect(failures == 0, "\(failures) of \(Self.cases) failed:\n\(summary)\n\(firstDump ?? "")")
    }
}

struct StressScenario {
    var random: TestRandom
    var model: ModelBroker
    var configuration: SymbolStateMachine.Configuration
    var cover: FlippedPositionCover
    var opsAtLastRest = 0

    static func kind(_ problem: String) -> String {
        // Strip numbers so similar problems group.
        String(problem.map { $0.isNumber ? "#" : $0 }).replacingOccurrences(of: "##", with: "#")
    }

    init(seed: UInt64) {
        random = TestRandom(seed: seed)
        cover = random.int(0...1) == 0 ? .bracket : .stopLossOnly
        configuration = SymbolStateMachine.Configuration(
            nativeModify: random.int(0...5) != 0,
            replaceStrategy: random.int(0...1) == 0 ? .cancelThenCreate : .createThenCancel,
            maxAttempts: random.int(1...3), flippedPositionCover: cover)
        model = ModelBroker("S", configuration)
    }

    mutating func quantity() -> Quantity { Quantity(units: Int64(random.int(1...20)) * 50 * Quantity.unitsPerShare / 2) }

    mutating func run() -> [String] {
        let side: Side = random.int(0...1) == 0 ? .buy : .sell
        let long = side == .buy
        var scaleIns: [BracketSpec.ScaleIn] = []
        for step in 0..<random.int(1...3) {
            scaleIns.append(.init(quantity: quantity(), type: .limit(Price(units: (long ? 98 - Int64(step) : 102 + Int64(step)) * Price.unitsPerWhole))))
        }
        let spec = BracketSpec(positionID: "P", symbol: "S", side: side, quantity: quantity(), entryType: .market,
                               stopLoss: random.int(0...6) == 0 ? nil : Price(long ? "95" : "105"),
                               takeProfit: random.int(0...5) == 0 ? nil : Price(long ? "110" : "90"), scaleIns: scaleIns)
        do { try model.open(spec) } catch { return ["open failed: \(error)"] }
        var problems: [String] = []
        for _ in 0..<random.int(20...150) {
            step(&problems)
            restCheck(&problems)
            if problems.count > 20 { break }
        }
        model.settle()
        restCheck(&problems)
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P", emitting: &actions)
        // A re-arm's work may fail again in this model only if we inject: settle answers honestly.
        model.settle()
        problems += finalCheck().map { "after re-arm: \($0)" }
        if model.sent.count > 3_000 { problems.append("too many operations: \(model.sent.count)") }
        return problems
    }

    mutating func step(_ problems: inout [String]) {
        switch random.int(0...13) {
        case 0...2:
            model.pull()
        case 3...6:
            guard !model.inFlight.isEmpty else { return }
            let which = random.int(0...(model.inFlight.count - 1))
            let operation = model.inFlight[which]
            let roll = random.int(0...19)
            switch operation.kind {
            case .modify:
                switch roll {
                case 0...5: model.complete(which, failing: .permanent("replace refused"))
                case 6...7: model.complete(which, failing: .transient("no answer"))
                case 8: model.complete(which, failing: .timedOut("timeout"), applied: true)
                case 9: model.complete(which, failing: .timedOut("timeout"))
                default: model.complete(which)
                }
            case .submit:
                switch roll {
                case 0...2 where operation.role.isProtective: model.complete(which, failing: .permanent("stop price out of band"))
                case 3: model.complete(which, failing: .transient("busy"))
                case 4: model.complete(which, failing: .timedOut("timeout"), applied: true)
                default: model.complete(which)
                }
            case .cancel:
                switch roll {
                default: model.complete(which)
                }
            }
        case 7...9:
            fillSomething(&problems)
        case 10:
            // too-late race
            guard let operation = model.inFlight.first(where: { $0.kind != .submit }),
                  let order = model.truth[operation.orderID], order.live else { return }
            do { try model.fill(operation.orderID, order.open, at: Price("100")!) } catch { problems.append("race fill refused: \(error)") }
            if let position = model.inFlight.firstIndex(of: operation) { model.complete(position) }
        case 11:
            model.fireRetries()
        case 12:
            if random.int(0...3) == 0 {
                var actions: [SymbolStateMachine.Action] = []
                model.machine.rearm("P", emitting: &actions)
            }
        default:
            model.fireRetries()
        }
    }

    mutating func fillSomething(_ problems: inout [String]) {
        let live = model.truth.filter { $0.value.live && $0.value.open.isPositive }.sorted { $0.key.rawValue < $1.key.rawValue }
        guard !live.isEmpty else { return }
        let (id, order) = live[random.int(0...(live.count - 1))]
        let halves = max(1, order.open.units / (Quantity.unitsPerShare * 25))
        let quantity = Quantity(units: Int64(random.int(1...Int(min(halves, 2000)))) * (Quantity.unitsPerShare * 25))
        let fill = quantity < order.open ? quantity : order.open
        do { try model.fill(id, fill, at: Price("100")!) } catch { problems.append("fill of \(id) refused: \(error)") }
    }

    /// At rest (nothing in flight, nothing ready, no retry pending), no role over-covers at the broker.
    mutating func restCheck(_ problems: inout [String]) {
        guard model.inFlight.isEmpty, model.retries.isEmpty, model.machine.isQuiescent else { return }
        let snapshot = model.snapshot("P")
        let net = snapshot.netQuantity
        if net.isZero { return }
        let protective: Side = net.units > 0 ? .sell : .buy
        for role in [OrderRole.stopLoss, .takeProfit] {
            let live = model.brokerLive("P", role)
            let sameSide = live.filter { $0.1.side == protective }.reduce(Quantity.zero) { $0 + $1.1.open }
            if sameSide > net.magnitude {
                problems.append("at rest: \(role) covers \(sameSide) at the broker for net \(net) (\(live.map { "\($0.0) \($0.1.open)" }))")
            }
            let failed = Set(snapshot.orders.filter { $0.failure != nil }.map(\.id))
            let wrong = live.filter { $0.1.side != protective && !failed.contains($0.0) }
            if !wrong.isEmpty {
                problems.append("at rest: \(role) on the wrong side at the broker for net \(net): \(wrong.map { "\($0.0) \($0.1.open)" })")
            }
        }
    }

    func finalCheck() -> [String] {
        var problems = model.machine.invariantViolations(atQuiescence: true).map(\.description)
        if !model.machine.isQuiescent { problems.append("not quiescent") }
        let snapshot = model.snapshot("P")
        let net = snapshot.netQuantity
        if model.brokerNet("P") != net { problems.append("broker net \(model.brokerNet("P")) vs \(net)") }
        for role in [OrderRole.stopLoss, .takeProfit] {
            let atBroker = model.brokerLive("P", role)
            if net.isZero || snapshot.protectivePrice(role, cover: cover) == nil {
                if !atBroker.isEmpty { problems.append("\(role) live at broker while flat or not wanted (net \(net))") }
                continue
            }
            if atBroker.count != 1 { problems.append("\(atBroker.count) live \(role) at broker for net \(net)"); continue }
            if atBroker[0].1.open != net.magnitude { problems.append("\(role) open \(atBroker[0].1.open) at broker for net \(net)") }
            if atBroker[0].1.side != (net.units > 0 ? .sell : .buy) { problems.append("\(role) wrong side") }
        }
        return problems
    }

    func dump() -> String {
        var lines: [String] = []
        let position = model.snapshot("P")
        lines.append("config \(configuration)")
        lines.append("P \(position.side) \(position.status) net \(position.netQuantity)")
        for order in position.orders {
            let truth = model.truth[order.id].map { "broker q \($0.quantity) f \($0.filled) live \($0.live)" } ?? "not at broker"
            lines.append("  \(order.id) \(order.role) \(order.side) q \(order.quantity) f \(order.filledQuantity) \(order.status) \(order.failure ?? "") | \(truth)")
        }
        lines.append("alerts: \(model.alerts.map { "\($0.kind) \($0.orderID.map { "\($0)" } ?? "") \($0.message)" }.joined(separator: "\n  "))")
        lines.append("log:\n    \(model.log.joined(separator: "\n    "))")
        return lines.joined(separator: "\n")
    }
}
