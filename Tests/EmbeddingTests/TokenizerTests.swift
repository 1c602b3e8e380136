import Foundation
import Testing

@testable import Embedding

/// The tokenizer against the reference on small tokenizers trained by `Scripts/make-static-golden.sh`
/// (WordPiece with BERT's normalizer and pre-tokenizer; BPE with Metaspace, unknown fusing and NFKC;
/// BPE with a continuation prefix and a word suffix), and its refusal of what it does not support.
struct TokenizerTests {
    struct Golden: Decodable {
        var texts: [String]
        var tokenizers: [String: [[Int32]]]
    }

    @Test(arguments: ["wordpiece", "metaspace", "suffix"])
    func idsMatchTheReference(name: String) throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Fixture.data("tokenizer-golden.json"))
        let tokenizer = try Tokenizer(json: [UInt8](Fixture.data("\(name)-tokenizer.json")))
        let expected = try #require(golden.tokenizers[name])
        #expect(expected.count == golden.texts.count)
        var mismatches = 0
        for (text, ids) in zip(golden.texts, expected) {
            let actual = tokenizer.encode(text)
            if actual != ids {
                mismatches += 1
                Issue.record("\(name): ids differ for \(text.debugDescription.prefix(80)): got \(actual.prefix(12)), expected \(ids.prefix(12))")
                if mismatches > 5 { break }
            }
        }
    }

    static func json(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let minimalBPE = """
        {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3}, "merges": ["a b"], "unk_token": "<unk>", "fuse_unk": true}}
        """

    @Test func minimalBytePairEncoding() throws {
        let tokenizer = try Tokenizer(json: Self.json(Self.minimalBPE))
        #expect(tokenizer.encode("ab") == [2])
        #expect(tokenizer.encode("aab") == [0, 2])
        #expect(tokenizer.encode("xyab") == [3, 2], "consecutive unknowns fuse")
        #expect(tokenizer.encode("") == [])
        #expect(tokenizer.idLimit == 4)
    }

    @Test func mergesInTheNewerPairFormat() throws {
        let tokenizer = try Tokenizer(json: Self.json("""
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3}, "merges": [["a", "b"], ["ab", "b"]]}}
            """))
        #expect(tokenizer.encode("abbab") == [3, 2])
    }

    @Test func equalRanksMergeLeftmostFirst() throws {
        // "aaa": the pair (a, a) at 0 merges first, leaving "aa a".
        let tokenizer = try Tokenizer(json: Self.json("""
            {"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1}, "merges": ["a a"]}}
            """))
        #expect(tokenizer.encode("aaa") == [1, 0])
        #expect(tokenizer.encode("aaaa") == [1, 1])
    }

    @Test(arguments: [
        ("not json", "invalid JSON"),
        ("[1, 2]", "not an object"),
        ("{}", "no 'model'"),
        (#"{"model": {"type": "Unigram", "vocab": []}}"#, "the model type 'Unigram' is not supported"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#, "'b' is not in the vocabulary"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}}"#, "not two tokens"),
        (#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}"#, "must be a non-negative integer id"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}"#, "share the id 0"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}}"#, "unk_token '<unk>' is not in the vocabulary"),
        (#"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#, "the normalizer type 'Precompiled' is not supported"),
        (#"{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#, "the pre-tokenizer type 'ByteLevel' is not supported"),
        (#"{"normalizer": {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#, "regular expression"),
        (#"{"model": {"type": "WordPiece", "vocab": {"a": 0}}}"#, "unk_token '[UNK]' is not in the vocabulary"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"content": 5}]}"#, "added_tokens[0]"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}"#, "dropout"),
        (#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []"#, "unexpected end of input"),
        (#"{"model": {"type": "BPE", "vocab": {"a\u12": 0}, "merges": []}}"#, "hex digits"),
    ])
    func malformedOrUnsupportedFilesAreClearErrors(json: String, message: String) {
        do {
            _ = try Tokenizer(json: Self.json(json))
            Issue.record("expected an error containing \(message)")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func deeplyNestedJSONIsRefusedNotACrash() {
        let json = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: EmbeddingError.self) { try JSONValue.parse(Array(json.utf8)) }
    }

    @Test func jsonStringsAndNumbers() throws {
        let value = try JSONValue.parse(Array(#"{"s": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "n": -12.5e1, "i": 42, "t": true, "z": null}"#.utf8))
        let object = try #require(value.object)
        #expect(object["s"]?.string == "a\"\\/\u{8}\u{c}\n\r\té😀")
        #expect(object["n"] == .number(-125))
        #expect(object["i"]?.integer == 42)
        #expect(object["t"]?.bool == true)
        #expect(object["z"]?.isNull == true)
    }

    @Test func missingFileNamesThePath() {
        do {
            _ = try Tokenizer(contentsOfFile: "/nonexistent/tokenizer.json")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("/nonexistent/tokenizer.json does not exist"))
        }
    }

    @Test func longTextWithoutPreTokenizationIsFast() throws {
        // 20 000 characters as one BPE word: the merge loop is O(n log n).
        let tokenizer = try Tokenizer(json: Self.json("""
            {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "_"}, {"type": "Replace", "pattern": {"String": " "}, "content": "_"}]},
             "model": {"type": "BPE", "vocab": {"_": 0, "a": 1, "b": 2, "_a": 3, "ab": 4, "_ab": 5, "abab": 6}, "merges": ["_ a", "a b", "_a b", "ab ab"]}}
            """))
        let text = String(repeating: "ab ", count: 6_667)
        let clock = ContinuousClock()
        var ids: [Int32] = []
        let elapsed = clock.measure { ids = tokenizer.encode(text) }
        #expect(ids.count == 6_667 * 1 + 1)
        #expect(elapsed < .milliseconds(500), "took \(elapsed)")
    }
}
