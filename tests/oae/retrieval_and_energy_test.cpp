// BM25 ranking on a hand-made corpus, the RAPL reader on a fake powercap
// tree (wrap-around included), and the dataset loaders.
#include <gtest/gtest.h>

#include <fstream>

#include <fmt/format.h>

#include "frugal/bm25_index.h"
#include "frugal/energy.h"
#include "frugal/error.h"
#include "frugal/qa_dataset.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(Bm25, RanksTheMatchingPassageFirstAndPersists) {
  const auto dir = test::scratch_dir("bm25");
  const std::vector<Document> corpus = {
      {"weather", "Weather", "Rain is expected in the north. The south stays dry and sunny."},
      {"broncos", "Super Bowl", "The Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50."},
      {"stadium", "Levi's Stadium", "Levi's Stadium in Santa Clara hosted the game."},
      {"panthers", "Panthers", "The Carolina Panthers had a 15-1 record that season."},
  };
  {
    const Bm25Index index = Bm25Index::build(dir / "index.sqlite", corpus);
    const auto hits = index.search("Which team won Super Bowl 50?", 2);
    ASSERT_EQ(hits.size(), 1u);  // no other passage shares a word with the question
    EXPECT_EQ(hits[0].id, "broncos");
    EXPECT_EQ(hits[0].index, 1u);
    // Two passages name the Panthers; the one about them (title, record) ranks first.
    const auto panthers = index.search("Carolina Panthers record", 3);
    ASSERT_EQ(panthers.size(), 2u);
    EXPECT_EQ(panthers[0].id, "panthers");
    EXPECT_EQ(panthers[1].id, "broncos");
    EXPECT_GT(panthers[0].score, panthers[1].score);
  }
  const Bm25Index reopened = Bm25Index::open(dir / "index.sqlite");
  EXPECT_EQ(reopened.size(), 4u);
  EXPECT_EQ(reopened.search("Where was the game? stadium", 1).at(0).id, "stadium");
  EXPECT_EQ(reopened.search("raining", 1).at(0).id, "weather");  // Porter stemming: raining -> rain
  // FTS5 syntax in a question is taken as words, not operators.
  EXPECT_NO_THROW(reopened.search("NOT \"quoted\" AND (panthers* OR -x) NEAR", 3));
  EXPECT_EQ(reopened.search("NOT panthers", 1).at(0).id, "panthers");
  EXPECT_TRUE(reopened.search("?!", 3).empty());
  EXPECT_THROW(Bm25Index::open(dir / "missing.sqlite"), Error);
}

TEST(Bm25, QueryQuotingNeutralisesOperators) {
  EXPECT_EQ(fts5_any_word_query("Who won? \"x\" AND"), "\"Who\" OR \"won\" OR \"x\" OR \"AND\"");
  EXPECT_EQ(fts5_any_word_query("--"), "");
}

TEST(Rapl, ReadsPackagesAndDramAndUndoesWrapAround) {
  const auto root = test::scratch_dir("powercap");
  write(root / "intel-rapl:0" / "name", "package-0\n");
  write(root / "intel-rapl:0" / "energy_uj", "1000000\n");
  write(root / "intel-rapl:0" / "max_energy_range_uj", "262143328850\n");
  write(root / "intel-rapl:0:0" / "name", "core\n");  // inside the package figure: not added
  write(root / "intel-rapl:0:0" / "energy_uj", "5\n");
  write(root / "intel-rapl:0:1" / "name", "dram\n");
  write(root / "intel-rapl:0:1" / "energy_uj", "65000000\n");
  write(root / "intel-rapl:0:1" / "max_energy_range_uj", "65532610987\n");
  write(root / "intel-rapl:1" / "name", "psys\n");  // the whole platform: would count the package twice
  write(root / "intel-rapl:1" / "energy_uj", "7\n");
  const RaplReader reader(root);
  ASSERT_TRUE(reader.available());
  ASSERT_EQ(reader.domains().size(), 2u);
  EXPECT_EQ(reader.domains()[0].name, "package-0");
  EXPECT_EQ(reader.domains()[1].name, "dram");
  const auto before = reader.read();
  EXPECT_EQ(before, (std::vector<uint64_t>{1000000, 65000000}));
  // The package used 2.5 J; DRAM wrapped: from 65532610000 up to its range, then 1000 past 0.
  write(root / "intel-rapl:0" / "energy_uj", "3500000\n");
  const std::vector<uint64_t> wrapped_before = {1000000, 65532610000};
  write(root / "intel-rapl:0:1" / "energy_uj", "1000\n");
  const auto after = reader.read();
  EXPECT_NEAR(reader.joules_between(wrapped_before, after), 2.5 + (987 + 1000) * 1e-6, 1e-9);

  EnergyMeter meter({root, 10.0, false});
  EXPECT_TRUE(meter.measured());
  EXPECT_NE(meter.description().find("RAPL: package-0, dram"), std::string::npos);
  const auto mark = meter.mark();
  write(root / "intel-rapl:0" / "energy_uj", "4500000\n");
  write(root / "intel-rapl:0:1" / "energy_uj", "2000\n");
  EXPECT_NEAR(meter.joules_since(mark), 1.0 + 1000e-6, 1e-9);
  // A counter that cannot be read is not taken for a wrap-around.
  std::filesystem::remove(root / "intel-rapl:0:1" / "energy_uj");
  const auto broken = reader.read();
  EXPECT_EQ(broken[1], RaplReader::kUnreadable);
  EXPECT_NEAR(reader.joules_between(after, broken), (4500000 - 3500000) * 1e-6, 1e-9);
}

TEST(Rapl, NoReadableCountersMeansAnEstimate) {
  const auto root = test::scratch_dir("powercap-empty");
  EnergyMeter meter({root, 12.5, false});
  EXPECT_FALSE(meter.measured());
  EXPECT_NE(meter.description().find("estimated (CPU time x 12.5 W per core)"), std::string::npos);
  const auto mark = meter.mark();
  volatile double sink = 0;
  for (int i = 0; i < 20000000; ++i) sink = sink + i * 1e-9;  // burn some CPU time
  const double joules = meter.joules_since(mark);
  EXPECT_GT(joules, 0.0);
  EXPECT_NEAR(joules / 12.5, process_cpu_seconds() - mark.cpu_seconds, 0.05);
}

TEST(QaDatasets, SquadArticleLoadsWithEveryParagraphAndQuestion) {
  const QaDataset d = load_qa_dataset(test::shared_path("data/squad-dev-v1.1-super-bowl-50.json"));
  EXPECT_EQ(d.passages.size(), 54u);
  EXPECT_EQ(d.questions.size(), 810u);
  EXPECT_EQ(d.passages[0].id, "Super_Bowl_50-0");
  EXPECT_EQ(d.questions[0].question, "Which NFL team represented the AFC at Super Bowl 50?");
  EXPECT_EQ(d.questions[0].answers.at(0), "Denver Broncos");
  EXPECT_EQ(d.questions[0].gold_passages, std::vector<size_t>{0});
  // A sample stays within its token budget and only asks about passages it holds.
  const auto count = [](const Document& p) { return p.text.size() / 4; };
  const QaDataset s = sample_qa_dataset(d, 2000, 30, 7, count);
  size_t tokens = 0;
  for (const auto& p : s.passages) tokens += count(p);
  EXPECT_LE(tokens, 2000u);
  EXPECT_EQ(s.questions.size(), 30u);
  for (const auto& q : s.questions) EXPECT_LT(q.gold_passages.at(0), s.passages.size());
  const QaDataset again = sample_qa_dataset(d, 2000, 30, 7, count);
  EXPECT_EQ(again.questions.front().id, s.questions.front().id);  // deterministic from the seed
}

TEST(QaDatasets, SquadV2AndHotpotQa) {
  const auto dir = test::scratch_dir("qa-datasets");
  write(dir / "v2.json", R"({"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Ann lives in Oslo.",
        "qas": [{"id": "a", "question": "Where does Ann live?", "answers": [{"text": "Oslo", "answer_start": 13}]},
                {"id": "b", "question": "Where does Bob live?", "answers": [], "is_impossible": true}]}]}]})");
  const QaDataset v2 = load_qa_dataset(dir / "v2.json");
  ASSERT_EQ(v2.questions.size(), 2u);
  EXPECT_TRUE(v2.questions[1].answers.empty());
  EXPECT_EQ(v2.name, "SQuAD v2.0: T");
  write(dir / "hotpot.json", R"([{"_id": "h1", "question": "Which city is Ann's employer in?", "answer": "Oslo",
        "supporting_facts": [["Ann", 0], ["Acme", 0]],
        "context": [["Ann", ["Ann works at Acme. ", "She likes tea."]], ["Acme", ["Acme is in Oslo."]],
                    ["Bob", ["Bob is a cat."]]]},
        {"_id": "h2", "question": "What is Bob?", "answer": "a cat", "supporting_facts": [["Bob", 0]],
        "context": [["Bob", ["Bob is a cat."]]]}])");
  const QaDataset hotpot = load_qa_dataset(dir / "hotpot.json");
  EXPECT_EQ(hotpot.passages.size(), 3u);  // "Bob" appears twice, stored once
  EXPECT_EQ(hotpot.passages[0].text, "Ann works at Acme. She likes tea.");
  EXPECT_EQ(hotpot.questions[0].gold_passages, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(hotpot.questions[1].gold_passages, std::vector<size_t>{2});
  // Questions come first: with many distractor passages each sampled question
  // still has all its gold passages in the corpus.
  std::string many = "[";
  for (int i = 0; i < 300; ++i) {
    many += fmt::format(R"({}{{"_id": "q{}", "question": "Q{}?", "answer": "a", "supporting_facts": [["A{}", 0], ["B{}", 0]],
        "context": [["A{}", ["alpha {}."]], ["B{}", ["beta {}."]], ["C{}", ["gamma {}."]]]}})",
                        i ? "," : "", i, i, i, i, i, i, i, i, i, i);
  }
  write(dir / "many.json", many + "]");
  const QaDataset big = load_qa_dataset(dir / "many.json");
  EXPECT_EQ(big.passages.size(), 900u);
  // 60 tokens of 4-token passages: 7 questions with their 2 gold passages each (56), then 1 distractor.
  const QaDataset sample = sample_qa_dataset(big, 60, 10, 3, [](const Document&) { return size_t{4}; });
  EXPECT_EQ(sample.questions.size(), 7u);
  EXPECT_EQ(sample.passages.size(), 15u);
  for (const auto& q : sample.questions) {
    ASSERT_EQ(q.gold_passages.size(), 2u);
    EXPECT_EQ(sample.passages.at(q.gold_passages[0]).id, fmt::format("A{}", q.id.substr(1)));
    EXPECT_EQ(sample.passages.at(q.gold_passages[1]).id, fmt::format("B{}", q.id.substr(1)));
  }
  write(dir / "other.json", R"({"rows": []})");
  EXPECT_THROW(load_qa_dataset(dir / "other.json"), Error);
}

}  // namespace
}  // namespace frugal
