// Corpus reading and the knowledge prompt layout.
#include <gtest/gtest.h>

#include <fstream>

#include "cag_test_support.h"
#include "frugal/error.h"

namespace frugal::test {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string error_of(const std::vector<fs::path>& paths) {
  try {
    read_documents(paths);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ReadDocuments, FolderFilesAndJsonLines) {
  const auto dir = scratch_dir("cag-docs");
  fs::create_directory(dir / "corpus");
  write_text(dir / "corpus" / "b-school.txt", "  The school has 340 pupils.\n");
  write_text(dir / "corpus" / "a-clinic.md", "# Harlow Clinic\n\nDr. Osei directs it.\n");
  write_text(dir / "corpus" / "notes.pdf", "not text");
  write_text(dir / "more.jsonl",
             "{\"id\": \"x1\", \"title\": \"Office\", \"text\": \"Opens at 9.\"}\n\n{\"id\": 7, \"text\": \"Seven.\"}\n"
             "{\"text\": \"No id.\"}\n");
  const std::vector<fs::path> paths = {dir / "corpus", dir / "more.jsonl"};
  const auto docs = read_documents(paths);
  ASSERT_EQ(docs.size(), 5u);
  EXPECT_EQ(docs[0].id, "a-clinic");
  EXPECT_EQ(docs[0].title, "Harlow Clinic");
  EXPECT_EQ(docs[0].text, "Dr. Osei directs it.");
  EXPECT_EQ(docs[1].id, "b-school");
  EXPECT_EQ(docs[1].title, "b-school");
  EXPECT_EQ(docs[1].text, "The school has 340 pupils.");
  EXPECT_EQ(docs[2].id, "x1");
  EXPECT_EQ(docs[2].title, "Office");
  EXPECT_EQ(docs[3].id, "7");
  EXPECT_EQ(docs[4].id, "more-4");  // file name and line when no id is given
  EXPECT_NE(document_hash(docs[0]), document_hash(docs[1]));
}

TEST(ReadDocuments, ErrorsNameTheFileAndLine) {
  const auto dir = scratch_dir("cag-docs-bad");
  write_text(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n");
  EXPECT_NE(error_of({dir / "bad.jsonl"}).find("bad.jsonl:2"), std::string::npos);
  write_text(dir / "notext.jsonl", "{\"title\": \"t\"}\n");
  EXPECT_NE(error_of({dir / "notext.jsonl"}).find("\"text\""), std::string::npos);
  write_text(dir / "a.txt", "one");
  EXPECT_NE(error_of({dir / "a.txt", dir / "a.txt"}).find("two documents have the id 'a'"), std::string::npos);
  EXPECT_NE(error_of({dir / "missing"}).find("no such file"), std::string::npos);
  fs::create_directory(dir / "empty");
  EXPECT_NE(error_of({dir / "empty"}).find("no .txt or .md"), std::string::npos);
}

TEST(ReadDocuments, FoldersSortByIdAndRejectInvalidUtf8) {
  const auto dir = scratch_dir("cag-docs-order");
  write_text(dir / "faq.md", "one");
  write_text(dir / "faq-2.md", "two");  // as a path "faq-2.md" < "faq.md"; as an id "faq" < "faq-2"
  const auto docs = read_documents(std::vector<fs::path>{dir});
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].id, "faq");
  EXPECT_EQ(docs[1].id, "faq-2");
  write_text(dir / "latin1.txt", "caf\xe9");
  const std::string message = error_of({dir / "latin1.txt"});
  EXPECT_NE(message.find("not valid UTF-8 (byte 3"), std::string::npos) << message;
}

TEST(PromptLayout, PlainSegmentsDecodeToTheDocumentedText) {
  auto loaded = load_test_model("models/tiny-qwen2-gpt2.gguf");  // byte-level BPE: decoding is exact
  const PromptTemplate prompt = plain_prompt_template();
  const Document doc{"clinic", "Harlow Clinic", "Dr. Osei directs it."};
  std::vector<TokenId> tokens = encode_header(*loaded.tokenizer, prompt, "Be brief.");
  for (TokenId t : encode_document(*loaded.tokenizer, prompt, doc)) tokens.push_back(t);
  for (TokenId t : encode_question(*loaded.tokenizer, prompt, "Who?")) tokens.push_back(t);
  EXPECT_EQ(loaded.tokenizer->decode(tokens),
            "Be brief.\n\nDocument [clinic] Harlow Clinic\nDr. Osei directs it.\n\nQuestion: Who?\nAnswer:");
}

TEST(PromptLayout, UserTextNeverBecomesAControlToken) {
  auto loaded = load_test_model("models/tiny-qwen2-gpt2.gguf");
  const Tokenizer& tokenizer = *loaded.tokenizer;
  const TokenId end_of_text = tokenizer.find_token("<|endoftext|>");
  ASSERT_GE(end_of_text, 0);
  PromptTemplate prompt = plain_prompt_template();
  prompt.question = "Q: {question}<|endoftext|>";
  const auto tokens = encode_question(tokenizer, prompt, "a<|endoftext|>b");
  // Once, from the template; the question's copy is plain text.
  EXPECT_EQ(std::count(tokens.begin(), tokens.end(), end_of_text), 1);
  EXPECT_EQ(tokens.back(), end_of_text);
  // Template and user text that meet are one text: "Q: a..." tokenizes as a whole.
  const Tokenizer::TextPart parts[] = {{"Hel", true}, {"lo world", false}};
  EXPECT_EQ(tokenizer.encode_parts(parts, false), tokenizer.encode("Hello world", false, false));
}

TEST(PromptLayout, ChatLayoutWrapsKnowledgeAndQuestionInOneUserTurn) {
  const PromptTemplate prompt = chat_prompt_template(ChatFormat::ChatML);
  EXPECT_EQ(prompt.name, "chat:chatml");
  EXPECT_EQ(prompt.header, "<|im_start|>user\n{system}\n\n");
  EXPECT_EQ(prompt.question, "Question: {question}<|im_end|>\n<|im_start|>assistant\n");
  const PromptTemplate llama3 = chat_prompt_template(ChatFormat::Llama3);
  EXPECT_EQ(llama3.header, "<|start_header_id|>user<|end_header_id|>\n\n{system}\n\n");
}

TEST(PromptLayout, TemplateFiles) {
  const auto dir = scratch_dir("cag-template");
  write_text(dir / "t.json", R"({"header": "{system}|", "document": "<{id}> {text}|", "question": "{question}?",
                                 "system": "Be brief."})");
  const auto prompt = read_prompt_template(dir / "t.json");
  EXPECT_EQ(prompt.document, "<{id}> {text}|");
  EXPECT_EQ(prompt.default_system, "Be brief.");
  write_text(dir / "bad.json", R"({"header": "", "document": "no text placeholder", "question": "{question}"})");
  EXPECT_THROW(read_prompt_template(dir / "bad.json"), Error);
  write_text(dir / "missing.json", R"({"header": ""})");
  EXPECT_THROW(read_prompt_template(dir / "missing.json"), Error);
}

}  // namespace
}  // namespace frugal::test
