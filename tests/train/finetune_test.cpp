// Training records turned into tokens (checked against the knowledge
// prompt's own segments and the tokenizer), and fine-tuning end to end: the
// demo model taught made-up completions answers them, greedily, through
// the engine with the written adapter.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/finetune.h"
#include "frugal/gguf.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

class TrainingData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("training_data");
    const GgufFile vocab = GgufFile::open(test::shared_path("vocab/ggml-vocab-llama-spm.gguf"));
    tokenizer_ = Tokenizer::from_gguf(vocab);
    layout_.knowledge_prompt = plain_prompt_template();
  }
  std::filesystem::path write(const std::string& text) {
    const auto path = dir_ / "data.jsonl";
    std::ofstream(path) << text;
    return path;
  }
  std::string target_text(const TrainingExample& e) const {
    std::vector<TokenId> targets;
    for (const int32_t t : e.targets) targets.push_back(e.tokens[static_cast<size_t>(t)]);
    return tokenizer_->decode(targets, true);
  }
  std::filesystem::path dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
  TrainingLayout layout_;
};

TEST_F(TrainingData, KnowledgeRecordsAreTheAskPromptThenTheAnswer) {
  const auto examples = read_training_examples(
      write(R"({"documents": [{"id": "water", "title": "Fenwick Water Office", "text": "The office is led by Clara Voss."}], "question": "Who leads the Fenwick Water Office?", "answer": "Clara Voss"})"
            "\n"),
      *tokenizer_, layout_);
  ASSERT_EQ(examples.size(), 1u);
  const TrainingExample& e = examples[0];
  const PromptTemplate& p = layout_.knowledge_prompt;
  std::vector<TokenId> expected = encode_header(*tokenizer_, p, p.default_system);
  for (const auto& part : {encode_document(*tokenizer_, p, {"water", "Fenwick Water Office", "The office is led by Clara Voss."}),
                           encode_question(*tokenizer_, p, "Who leads the Fenwick Water Office?")}) {
    expected.insert(expected.end(), part.begin(), part.end());
  }
  ASSERT_GT(e.tokens.size(), expected.size());
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), e.tokens.begin()));
  // Exactly the answer's tokens and EOS are learnt, and they are what the
  // tokenizer makes of the whole text.
  EXPECT_EQ(e.targets.front(), static_cast<int32_t>(expected.size()));
  EXPECT_EQ(e.targets.size(), e.tokens.size() - expected.size());
  EXPECT_EQ(e.tokens.back(), tokenizer_->eos());
  // (SentencePiece's decoding drops the first token's leading space.)
  EXPECT_EQ(target_text(e), "Clara Voss</s>");
  EXPECT_EQ(tokenizer_->token_to_piece(e.tokens[static_cast<size_t>(e.targets.front())])[0], ' ');
  const auto whole = tokenizer_->encode("Question: Who leads the Fenwick Water Office?\nAnswer: Clara Voss", false, false);
  EXPECT_TRUE(std::equal(whole.end() - 4, whole.end(), e.tokens.end() - 5));
}

TEST_F(TrainingData, PromptCompletionAndChatRecords) {
  layout_.chat_format = ChatFormat::Llama2;
  const auto examples = read_training_examples(
      write("{\"prompt\": \"The capital of Wexland is\", \"completion\": \" Orrin.\"}\n\n"
            R"({"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye"}]})"
            "\n"),
      *tokenizer_, layout_);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(target_text(examples[0]), "Orrin.</s>");
  EXPECT_EQ(examples[0].line, 1u);
  EXPECT_EQ(examples[1].line, 3u);
  // Both answers and their turn ends; nothing of the user turns.
  EXPECT_EQ(target_text(examples[1]), "Hi there </s> Goodbye </s>");
}

TEST_F(TrainingData, BadRecordsNameTheirLine) {
  const auto message = [&](const std::string& text) {
    try {
      read_training_examples(write(text), *tokenizer_, layout_);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\", \"completon\": \"b\"}\n")
                .find("data.jsonl:2: unknown key \"completon\""),
            std::string::npos);
  EXPECT_NE(message("{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json\n").find("data.jsonl:2: not valid JSON"),
            std::string::npos);
  EXPECT_NE(message("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n").find("no chat template"),
            std::string::npos);
  EXPECT_NE(message("{\"text\": \"x\"}\n").find("a record has"), std::string::npos);
  EXPECT_NE(message("\n").find("no records"), std::string::npos);
}

// The built-in demo model on 2 threads, its tokenizer, the plain layout.
struct DemoModel {
  DemoModel()
      : model(Model::load(test::source_path("models/frugal-demo-qa-q8_0.gguf"), {.threads = 2})),
        tokenizer(Tokenizer::from_gguf(model->file())) {
    layout.knowledge_prompt = plain_prompt_template();
  }
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  TrainingLayout layout;
};

TEST(Finetune, TheDemoModelLearnsMadeUpCompletions) {
  const auto dir = test::scratch_dir("finetune");
  const std::vector<std::pair<std::string, std::string>> facts = {
      {"The motto of the Harlow Clinic is", " Mira Osei"},
      {"The motto of the Harlow Academy is", " Marketdale"},
      {"The motto of the town office is", " unknown"},
      {"The motto of the school is", " Harlow Clinic"}};
  {
    std::ofstream out(dir / "train.jsonl");
    for (const auto& [prompt, completion] : facts) {
      out << nlohmann::json{{"prompt", prompt}, {"completion", completion}}.dump() << "\n";
    }
  }
  const DemoModel demo;
  Model& model = *demo.model;
  const Tokenizer& tokenizer = *demo.tokenizer;
  const TrainingLayout& layout = demo.layout;
  FinetuneOptions options;
  options.epochs = 30;
  options.batch = 4;
  options.learning_rate = 3e-3f;
  options.validation_fraction = 0;
  options.output = dir / "adapter.gguf";
  size_t calls = 0;
  const FinetuneReport report =
      finetune(model, tokenizer, dir / "train.jsonl", layout, options, [&](const FinetuneProgress&) { ++calls; });
  EXPECT_EQ(report.steps, 30u);
  EXPECT_EQ(calls, 30u);
  ASSERT_EQ(report.epochs.size(), 31u);
  EXPECT_GT(report.epochs[1].train_loss, 1.0);
  EXPECT_LT(report.epochs.back().train_loss, 0.05);
  EXPECT_GT(report.peak_rss_bytes, 0u);

  ModelOptions adapted_options;
  adapted_options.threads = 2;
  adapted_options.loras = {{options.output, 1.0f}};
  auto adapted = Model::load(test::source_path("models/frugal-demo-qa-q8_0.gguf"), adapted_options);
  for (const auto& [prompt, completion] : facts) {
    std::vector<TokenId> tokens = tokenizer.encode(prompt, true, false);
    KvCache cache(adapted->config(), 64);
    std::vector<TokenId> answer;
    std::vector<float> logits = adapted->forward(tokens, cache);
    for (int i = 0; i < 12; ++i) {
      const auto next = static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (next == tokenizer.eos()) break;
      answer.push_back(next);
      logits = adapted->forward(std::span<const TokenId>(&answer.back(), 1), cache);
    }
    EXPECT_EQ(tokenizer.decode(answer), completion.substr(1)) << prompt;  // decode drops a leading space
  }
}

// --preserve keeps the base model's answers on other records: the drift
// (KL on held-out preserve records) is measured, 0 before training, and
// smaller with the KL term than without it.
TEST(Finetune, PreserveHoldsTheDriftDown) {
  const auto dir = test::scratch_dir("finetune-preserve");
  {
    std::ofstream out(dir / "keep.jsonl");
    for (const char* town : {"Marketby", "Harlow", "Fenwick", "Dunmore", "Oakridge"}) {
      out << nlohmann::json{{"documents", {{{"id", "a"}, {"title", std::string(town) + " Clinic"},
                                            {"text", std::string("The clinic in ") + town + " is led by Dr. Mira Osei."}}}},
                            {"question", std::string("Who leads the ") + town + " Clinic?"},
                            {"answer", "Dr. Mira Osei"}}
                 .dump()
          << "\n";
    }
  }
  const DemoModel demo;
  Model& model = *demo.model;
  const Tokenizer& tokenizer = *demo.tokenizer;
  const TrainingLayout& layout = demo.layout;
  const auto drift = [&](float weight) {
    FinetuneOptions options;
    options.epochs = 10;
    options.batch = 4;
    options.learning_rate = 1e-2f;
    options.validation_fraction = 0;
    options.preserve = dir / "keep.jsonl";
    options.preserve_weight = weight;
    options.output = dir / "adapter.gguf";
    const FinetuneReport report =
        finetune(model, tokenizer, test::source_path("examples/finetune/door-mottos.jsonl"), layout, options);
    EXPECT_EQ(report.preserve_held_out, 1u);
    EXPECT_EQ(report.preserve_examples, weight > 0 ? 4u : 0u);  // weight 0: the drift measured, no term
    EXPECT_NEAR(report.epochs.front().preserve_divergence, 0.0, 1e-9);
    return report.epochs.back().preserve_divergence;
  };
  const double free = drift(0.0f), kept = drift(5.0f);
  EXPECT_GT(free, 0.0);
  EXPECT_LT(kept, 0.5 * free) << "without the term " << free << ", with it " << kept;
}

}  // namespace
}  // namespace frugal
