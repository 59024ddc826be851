// Constrained decoding: GBNF grammars against std::regex on the same
// languages (whole strings and prefixes), the parser's errors, JSON schemas
// whose constrained answers parse and validate (checked by a validator
// written here, independent of the grammar), and the schema parts that are
// refused rather than half applied.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/grammar.h"
#include "frugal/json_schema.h"
#include "frugal/knowledge.h"
#include "support/greedy_options.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using nlohmann::json;

class GrammarTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(test::source_path("models/frugal-demo-qa-q8_0.gguf"), {.threads = 2}).release();
    tokenizer_ = Tokenizer::from_gguf(model_->file()).release();
    // One token per printable ASCII character: text can be fed character
    // by character.
    for (size_t id = 0; id < tokenizer_->vocab_size(); ++id) {
      const std::string piece = tokenizer_->token_to_piece(static_cast<TokenId>(id), false);
      if (piece.size() == 1 && !char_token_.count(piece[0])) char_token_[piece[0]] = static_cast<TokenId>(id);
    }
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
  }

  // Fed character by character: false as soon as a character is refused;
  // at the end, whether the grammar may end there.
  static bool matches(const std::shared_ptr<const Grammar>& grammar, const std::string& text, bool* prefix = nullptr) {
    GrammarMatcher matcher(grammar, *tokenizer_);
    if (prefix) *prefix = true;
    for (const char c : text) {
      const TokenId token = char_token_.at(c);
      if (!matcher.accepts(token)) {
        if (prefix) *prefix = false;
        return false;
      }
      matcher.accept(token);
    }
    return matcher.can_end() && matcher.accepts(tokenizer_->eos());
  }

  static inline Model* model_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  static inline std::map<char, TokenId> char_token_;
};

TEST_F(GrammarTest, AgreesWithRegexOnWholeStringsAndPrefixes) {
  const std::pair<const char*, const char*> cases[] = {
      {R"(root ::= "[" [0-9]+ ("," [0-9]+)* "]")", R"(\[[0-9]+(,[0-9]+)*\])"},
      {R"(root ::= ("ab" | "c")* "d"?)", R"((ab|c)*d?)"},
      {R"(root ::= [a-c]{2,3} x{0,2}
x ::= [^a-z])", R"([a-c]{2,3}[^a-z]{0,2})"},
      {R"(root ::= "x" . "y"  # any character in the middle
)", R"(x.y)"},
      {R"(root ::= ([ab] [cd]){2} | "q"+)", R"(([ab][cd]){2}|q+)"},
  };
  const std::string alphabet = "abcdqxy019,[]-Z";
  std::mt19937 rng(1);
  for (const auto& [gbnf, pattern] : cases) {
    const auto grammar = Grammar::parse(gbnf);
    const std::regex whole(pattern);
    // The regex's prefixes: some completion in the alphabet matches (checked
    // by searching short completions).
    for (int trial = 0; trial < 400; ++trial) {
      std::string text;
      const int length = static_cast<int>(rng() % 7);
      for (int i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
      EXPECT_EQ(matches(grammar, text), std::regex_match(text, whole)) << gbnf << " on '" << text << "'";
    }
    // Strings the regex accepts, built from its own language: every prefix is a live prefix.
    for (const std::string& good : {std::string("[1,23,4]"), std::string("ababd"), std::string("acZ-"),
                                    std::string("x-y"), std::string("adbc"), std::string("qqq")}) {
      if (!std::regex_match(good, whole)) continue;
      for (size_t n = 0; n <= good.size(); ++n) {
        bool prefix = false;
        matches(grammar, good.substr(0, n), &prefix);
        EXPECT_TRUE(prefix) << gbnf << ": '" << good.substr(0, n) << "' refused";
      }
    }
  }
}

TEST_F(GrammarTest, ParserErrorsSayWhereAndWhat) {
  auto error = [](std::string_view text) {
    try {
      Grammar::parse(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error("root ::= item\n").find("rule 'item' is used but never defined"), std::string::npos);
  EXPECT_NE(error("start ::= \"a\"\n").find("no 'root' rule"), std::string::npos);
  EXPECT_NE(error("root ::= root \"a\" | \"b\"\n").find("left-recursive"), std::string::npos);
  EXPECT_NE(error("root ::= x\nx ::= \"a\"? root\n").find("left-recursive"), std::string::npos);
  EXPECT_NE(error("root ::= \"a\n").find("line"), std::string::npos);
  EXPECT_NE(error("root ::= [b-a]\n").find("ends below its start"), std::string::npos);
  EXPECT_NE(error("root ::= \"a\"{3,1}\n").find("maximum is below"), std::string::npos);
  EXPECT_NE(error("root ::= * \"a\"\n").find("nothing before it"), std::string::npos);
}

// A validator for the schemas below (types, required, enum, items and
// lengths), independent of the grammar code.
bool valid(const json& value, const json& schema) {
  if (schema.contains("enum")) {
    for (const auto& option : schema["enum"]) {
      if (option == value) return true;
    }
    return false;
  }
  const std::string type = schema.value("type", "");
  if (type == "object") {
    if (!value.is_object()) return false;
    for (const auto& key : schema.value("required", json::array())) {
      if (!value.contains(key.get<std::string>())) return false;
    }
    for (const auto& [key, item] : value.items()) {
      if (!schema["properties"].contains(key) || !valid(item, schema["properties"][key])) return false;
    }
    return true;
  }
  if (type == "array") {
    if (!value.is_array()) return false;
    if (value.size() < schema.value("minItems", 0u) || value.size() > schema.value("maxItems", 1000u)) return false;
    for (const auto& item : value) {
      if (!valid(item, schema["items"])) return false;
    }
    return true;
  }
  if (type == "string") {
    return value.is_string() && value.get<std::string>().size() <= schema.value("maxLength", 100000u);
  }
  if (type == "integer") return value.is_number_integer();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  return false;
}

TEST_F(GrammarTest, ConstrainedAnswersParseAndValidate) {
  const json schemas[] = {
      json::parse(R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 24},
                      "sure": {"type": "boolean"}}, "required": ["name", "sure"]})"),
      json::parse(R"({"type": "object", "properties": {"clinics": {"type": "array", "minItems": 2, "maxItems": 3,
                      "items": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                      "staff": {"type": "integer"}}, "required": ["name", "staff"]}}}, "required": ["clinics"]})"),
      json::parse(R"({"type": "object", "properties": {"kind": {"enum": ["clinic", "school", "office"]},
                      "score": {"type": "number"}, "note": {"type": "string", "maxLength": 8}},
                      "required": ["kind"]})"),
  };
  const PromptTemplate layout = plain_prompt_template();
  std::vector<TokenId> prompt = encode_header(*tokenizer_, layout, layout.default_system);
  for (const auto& part : {encode_document(*tokenizer_, layout, {"1", "Harlow Clinic", "The Harlow Clinic has 12 staff."}),
                           encode_question(*tokenizer_, layout, "Which clinics are there?")}) {
    prompt.insert(prompt.end(), part.begin(), part.end());
  }
  for (const json& schema : schemas) {
    for (const float temperature : {0.0f, 0.9f}) {
      GenerationOptions options = test::greedy(300);
      options.sampling.temperature = temperature;
      options.sampling.seed = 7;
      options.grammar = Grammar::parse(json_schema_to_gbnf(schema));
      KvCache cache(model_->config(), 1024);
      const GenerationResult result = generate(*model_, *tokenizer_, cache, prompt, options);
      ASSERT_EQ(result.stop_reason, StopReason::EndOfGeneration) << result.text;
      json value;
      ASSERT_NO_THROW(value = json::parse(result.text)) << result.text;
      EXPECT_TRUE(valid(value, schema)) << schema.dump() << "\n" << result.text;
    }
  }
}

TEST_F(GrammarTest, SchemaPartsFrugalCannotHonourAreRefusedByName) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})", "properties.age.minimum"},
      {R"({"type": "string", "pattern": "^[a-z]+$"})", "pattern"},
      {R"({"type": "object", "properties": {"when": {"type": "string", "format": "date"}}})", "properties.when.format"},
      {R"({"type": "object", "additionalProperties": true})", "additionalProperties"},
      {R"({"$ref": "#/$defs/missing"})", "$ref"},
  };
  for (const auto& [schema, path] : cases) {
    try {
      json_schema_to_gbnf(json::parse(schema));
      ADD_FAILURE() << schema << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  // Recursion through $defs is fine.
  const auto tree = Grammar::parse(json_schema_to_gbnf(json::parse(
      R"({"$defs": {"node": {"type": "object", "properties": {"children": {"type": "array",
          "items": {"$ref": "#/$defs/node"}}}, "required": ["children"]}}, "$ref": "#/$defs/node"})")));
  EXPECT_TRUE(matches(tree, R"({"children":[{"children":[]},{"children":[{"children":[]}]}]})"));
  EXPECT_FALSE(matches(tree, R"({"children":[{}]})"));
}

TEST_F(GrammarTest, SchemaOrderNamesAndLimits) {
  // Properties in the schema's order (an ordered_json keeps it).
  const auto ordered = Grammar::parse(json_schema_to_gbnf(nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"z": {"type": "integer"}, "a": {"type": "integer"}},
          "required": ["z", "a"]})")));
  EXPECT_TRUE(matches(ordered, R"({"z":1,"a":2})"));
  EXPECT_FALSE(matches(ordered, R"({"a":2,"z":1})"));
  // Rules made for groups never take the name of a rule of the text.
  const auto numbered = Grammar::parse(json_schema_to_gbnf(nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"4": {"type": "string", "minLength": 1}, "b": {"type": "integer"}}})")));
  EXPECT_TRUE(matches(numbered, R"({"4":"x","b":1})"));
  EXPECT_FALSE(matches(numbered, R"({"4":"x""y"})"));
  // An object with no properties named: any object.
  const auto any = Grammar::parse(json_schema_to_gbnf(json::parse(R"({"type": "object"})")));
  EXPECT_TRUE(matches(any, R"({"k":[1,true,null]})"));
  // Wrong JSON types in a schema, and counts that would blow up, are errors, not crashes.
  EXPECT_THROW(json_schema_to_gbnf(json::parse(R"({"type": 5})")), Error);
  EXPECT_THROW(json_schema_to_gbnf(json::parse(R"({"type": "object", "required": [1]})")), Error);
  EXPECT_THROW(json_schema_to_gbnf(json::parse(R"({"items": {"type": "string"}})")), Error);
  EXPECT_THROW(Grammar::parse(R"(root ::= ("a"?){0,999999})"), Error);
}

TEST_F(GrammarTest, GenerationRefusesCombinationsItCannotHonour) {
  GenerationOptions options = test::greedy(8);
  options.grammar = Grammar::parse(json_object_gbnf());
  options.ignore_eos = true;
  KvCache cache(model_->config(), 256);
  const std::vector<TokenId> prompt = {tokenizer_->bos()};
  EXPECT_THROW(generate(*model_, *tokenizer_, cache, prompt, options), Error);
}

}  // namespace
}  // namespace frugal
