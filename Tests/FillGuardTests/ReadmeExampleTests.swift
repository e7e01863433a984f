import FillGuard
import FillGuardCore
import FillGuardSimulator
import Foundation
import Testing

@Suite("README", .timeLimit(.minutes(5)))
struct ReadmeExampleTests {
    @Test("the library example in the README works as written")
    func libraryExample() async throws {
        var market = SimulatorConfiguration(seed: 7)
        market.partialFillAbove = nil
        let exchange = SimulatedExchange(configuration: market, symbols: ["GLD": Price("248.00")!])
        let manager = FillManager(broker: exchange)
        let feed = Task { await manager.run() }
        let alerts = manager.alerts()

        try await manager.open(BracketSpec(
            positionID: "P1", symbol: "GLD", side: .buy, quantity: Quantity("300")!, entryType: .market,
            stopLoss: Price("245.00"), takeProfit: Price("250.00"),
            scaleIns: [.init(quantity: Quantity("300")!, type: .limit(Price("246.00")!))]))

        await exchange.settle(manager)
        let position = await manager.position("P1")
        // What the README's print shows: "300 300", every time.
        #expect("\(position?.netQuantity ?? 0) \(position?.liveOrder(.stopLoss)?.openQuantity ?? 0)" == "300 300")
        #expect(position?.liveOrder(.takeProfit)?.openQuantity == 300)
        #expect(exchange.netPosition(of: "GLD") == 300)
        feed.cancel()
        manager.finishSubscriptions()
        var alertCount = 0
        for await _ in alerts { alertCount += 1 }
        #expect(alertCount == 0)
    }
}

@Suite("README: replay", .timeLimit(.minutes(5)))
struct ReadmeReplayExampleTests {
    /// The README, read from the checkout these tests were built from.
    static func readme() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    /// The body of the first fenced block after `marker`.
    static func block(after marker: String, in text: String) throws -> String {
        let start = try #require(text.range(of: marker)).upperBound
        let open = try #require(text.range(of: "```", range: start..<text.endIndex))
        let bodyStart = try #require(text.range(of: "\n", range: open.upperBound..<text.endIndex)).upperBound
        let close = try #require(text.range(of: "\n```", range: bodyStart..<text.endIndex))
        return String(text[bodyStart..<close.lowerBound])
    }

    @Test("the README's example trace replays to the JSON it shows (the parts it does not elide)")
    func traceExampleGivesTheShownJSON() throws {
        let readme = try Self.readme()
        let trace = try Self.block(after: "The trace format is JSON Lines", in: readme)
        let shown = try Self.block(after: "`replay --json` prints the state below", in: readme)
        let actual = TraceReplayer.replay(trace + "\n").json
        // The shown JSON spans lines and elides with "…": every piece between the elisions must be in the output.
        let joined = shown.split(separator: "\n").map { $0.drop { $0 == " " } }.joined()
        let pieces = joined.split(separator: "…").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: ", ")) }.filter { !$0.isEmpty }
        #expect(pieces.count >= 3)
        for piece in pieces {
            #expect(actual.contains(piece), "README shows \(piece)\nreplay printed \(actual)")
        }
    }
}
