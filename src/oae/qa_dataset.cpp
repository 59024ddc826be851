#include "frugal/qa_dataset.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"

namespace frugal {

namespace {

using nlohmann::json;

QaDataset load_squad(const json& root, const std::string& source) {
  QaDataset out;
  std::vector<std::string> titles;
  for (const auto& article : root.at("data")) {
    const std::string title = article.value("title", "article");
    titles.push_back(title);
    size_t index = 0;
    for (const auto& paragraph : article.at("paragraphs")) {
      const size_t passage = out.passages.size();
      out.passages.push_back({fmt::format("{}-{}", title, index++), title, paragraph.at("context").get<std::string>()});
      for (const auto& qa : paragraph.at("qas")) {
        QaQuestion q;
        q.id = qa.value("id", fmt::format("q{}", out.questions.size()));
        q.question = qa.at("question").get<std::string>();
        if (!qa.value("is_impossible", false)) {
          std::set<std::string> seen;
          for (const auto& answer : qa.at("answers")) {
            const std::string text = answer.at("text").get<std::string>();
            if (seen.insert(text).second) q.answers.push_back(text);
          }
          if (q.answers.empty()) throw Error(fmt::format("{}: question {} has no answer", source, q.id));
        }
        q.gold_passages = {passage};
        out.questions.push_back(std::move(q));
      }
    }
  }
  std::string version = root.value("version", "1.1");
  if (!version.empty() && version[0] == 'v') version.erase(0, 1);
  out.name = fmt::format("SQuAD v{}: {}{}", version, titles.empty() ? "" : titles.front(),
                         titles.size() > 1 ? fmt::format(" and {} more articles", titles.size() - 1) : "");
  return out;
}

QaDataset load_hotpotqa(const json& root) {
  QaDataset out;
  out.name = "HotpotQA";
  std::map<std::string, size_t> by_title;
  for (const auto& item : root) {
    QaQuestion q;
    q.id = item.value("_id", fmt::format("q{}", out.questions.size()));
    q.question = item.at("question").get<std::string>();
    q.answers = {item.at("answer").get<std::string>()};
    std::map<std::string, size_t> local;
    for (const auto& context : item.at("context")) {
      const std::string title = context.at(0).get<std::string>();
      std::string text;
      for (const auto& sentence : context.at(1)) text += sentence.get<std::string>();
      auto [it, inserted] = by_title.emplace(title, out.passages.size());
      if (inserted) out.passages.push_back({title, title, text});
      local[title] = it->second;
    }
    std::set<size_t> gold;
    for (const auto& fact : item.value("supporting_facts", json::array())) {
      const std::string title = fact.at(0).get<std::string>();
      if (local.count(title)) gold.insert(local[title]);
    }
    q.gold_passages.assign(gold.begin(), gold.end());
    out.questions.push_back(std::move(q));
  }
  return out;
}

}  // namespace

QaDataset load_qa_dataset(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read the dataset", path.string()));
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", path.string(), e.what()));
  }
  try {
    if (root.is_object() && root.contains("data")) return load_squad(root, path.string());
    if (root.is_array() && !root.empty() && root[0].contains("supporting_facts")) return load_hotpotqa(root);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: unexpected dataset structure ({})", path.string(), e.what()));
  }
  throw Error(fmt::format("{}: neither SQuAD (an object with \"data\") nor HotpotQA (a list of questions with "
                          "\"supporting_facts\")", path.string()));
}

QaDataset sample_qa_dataset(const QaDataset& dataset, size_t max_corpus_tokens, size_t max_questions, uint64_t seed,
                            const std::function<size_t(const Document&)>& count_tokens) {
  // Questions first, with their gold passages (for HotpotQA two passages out
  // of tens of thousands: drawn passages would almost never hold both), then
  // other passages, as distractors, while the budget allows.
  std::mt19937_64 rng(seed);
  std::vector<size_t> question_order(dataset.questions.size());
  for (size_t i = 0; i < question_order.size(); ++i) question_order[i] = i;
  std::shuffle(question_order.begin(), question_order.end(), rng);
  std::vector<size_t> token_counts(dataset.passages.size(), SIZE_MAX);
  auto tokens_of = [&](size_t p) {
    if (token_counts[p] == SIZE_MAX) token_counts[p] = count_tokens(dataset.passages[p]);
    return token_counts[p];
  };
  std::vector<bool> taken(dataset.passages.size(), false);
  size_t tokens = 0;
  std::vector<size_t> chosen;
  for (size_t q : question_order) {
    if (chosen.size() >= max_questions) break;
    const auto& gold = dataset.questions[q].gold_passages;
    if (gold.empty()) continue;
    size_t extra = 0;
    for (size_t p : gold) extra += taken[p] ? 0 : tokens_of(p);
    if (tokens + extra > max_corpus_tokens) continue;
    for (size_t p : gold) taken[p] = true;
    tokens += extra;
    chosen.push_back(q);
  }
  std::vector<size_t> passage_order(dataset.passages.size());
  for (size_t i = 0; i < passage_order.size(); ++i) passage_order[i] = i;
  std::shuffle(passage_order.begin(), passage_order.end(), rng);
  for (size_t p : passage_order) {
    if (taken[p]) continue;
    if (tokens + tokens_of(p) > max_corpus_tokens) {
      if (tokens + 32 > max_corpus_tokens) break;  // full: stop counting the rest
      continue;
    }
    tokens += tokens_of(p);
    taken[p] = true;
  }
  QaDataset out;
  out.name = dataset.name;
  std::vector<size_t> new_index(dataset.passages.size(), SIZE_MAX);
  for (size_t i = 0; i < dataset.passages.size(); ++i) {
    if (!taken[i]) continue;
    new_index[i] = out.passages.size();
    out.passages.push_back(dataset.passages[i]);
  }
  std::sort(chosen.begin(), chosen.end());
  for (size_t q : chosen) {
    QaQuestion question = dataset.questions[q];
    for (size_t& p : question.gold_passages) p = new_index[p];
    out.questions.push_back(std::move(question));
  }
  if (out.passages.empty() || out.questions.empty()) {
    throw Error(fmt::format("no question of {} fits a corpus of {} tokens with its gold passages; choose a larger "
                            "--size or --corpus-tokens", dataset.name, max_corpus_tokens));
  }
  return out;
}

size_t corpus_preset_tokens(std::string_view name) {
  if (name == "small") return 1000;
  if (name == "medium") return 3500;
  if (name == "large") return 7000;
  throw Error(fmt::format("unknown corpus size '{}'; choose small (1000 tokens), medium (3500) or large (7000)", name));
}

std::string normalize_answer(std::string_view text) {
  std::string lower;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && std::ispunct(u)) continue;  // string.punctuation is ASCII
    lower += static_cast<char>(u < 0x80 ? std::tolower(u) : u);
  }
  std::istringstream words(lower);
  std::string word, out;
  while (words >> word) {
    if (word == "a" || word == "an" || word == "the") continue;
    out += (out.empty() ? "" : " ") + word;
  }
  return out;
}

namespace {

bool says_unknown(std::string_view prediction) {
  const std::string n = normalize_answer(prediction);
  return n.empty() || n == "unknown";
}

std::vector<std::string> words_of(std::string_view text) {
  std::istringstream in(normalize_answer(text));
  std::vector<std::string> words;
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

}  // namespace

double exact_match(std::string_view prediction, std::span<const std::string> answers) {
  if (answers.empty()) return says_unknown(prediction) ? 1.0 : 0.0;
  const std::string p = normalize_answer(prediction);
  for (const auto& a : answers) {
    if (normalize_answer(a) == p) return 1.0;
  }
  return 0.0;
}

double f1_score(std::string_view prediction, std::span<const std::string> answers) {
  if (answers.empty()) return says_unknown(prediction) ? 1.0 : 0.0;
  const auto predicted = words_of(prediction);
  double best = 0;
  for (const auto& answer : answers) {
    const auto gold = words_of(answer);
    if (predicted.empty() || gold.empty()) {
      best = std::max(best, predicted == gold ? 1.0 : 0.0);
      continue;
    }
    std::map<std::string, int> counts;
    for (const auto& w : gold) ++counts[w];
    int common = 0;
    for (const auto& w : predicted) {
      if (counts[w]-- > 0) ++common;
    }
    if (common == 0) continue;
    const double precision = static_cast<double>(common) / static_cast<double>(predicted.size());
    const double recall = static_cast<double>(common) / static_cast<double>(gold.size());
    best = std::max(best, 2 * precision * recall / (precision + recall));
  }
  return best;
}

}  // namespace frugal
