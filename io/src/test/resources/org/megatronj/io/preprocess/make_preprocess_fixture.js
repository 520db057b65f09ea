// Makes the expected output of
//   megatron preprocess --input corpus.jsonl --output-prefix gpt2 --json-keys text title
//       --tokenizer-type GPT2BPETokenizer --append-eod
// independently of Megatron-J: token ids from the npm package gpt-3-encoder 1.1.4 (the same ids
// Megatron's GPT2BPETokenizer produces), files laid out as Megatron-LM's IndexedDatasetBuilder
// writes them (MEGATRON-FORMATS.md: "MMIDIDX\0\0", version 1, dtype 8 = uint16, N, M, int32
// lengths, int64 byte pointers, int64 document index; .bin = uint16 little-endian tokens).
//
//   npm install --prefix /tmp/gpt3enc gpt-3-encoder@1.1.4
//   NODE_PATH=/tmp/gpt3enc/node_modules node make_preprocess_fixture.js
//
// writes corpus.jsonl, gpt2_text_document.{bin,idx} and gpt2_title_document.{bin,idx} here.
const fs = require('fs');
const { encode } = require('gpt-3-encoder');
const EOD = 50256;

const docs = [
  { text: "Hello world", title: "greeting" },
  { text: "It's a test.\nSecond line with \"quotes\" and\ttabs.", title: "A title" },
  { text: "", title: "empty text: a document without sequences" },
  { text: "Größe, Straße — Unicode: 中文字符, русский, ελληνικά, עברית, हिन्दी, 😀🎉.", title: "" },
  { text: "Numbers 1,234.56 and 2023-10-01; contractions: don't, I'll, we've, they're.", title: "numbers" },
  { text: "   leading and trailing whitespace   \n\n", title: "ws" },
  { text: "<|endoftext|> stays text inside a document", title: "eod text" },
  { text: "def main():\n    print(\"hi\")  # code\n", title: "code", extra: { nested: [1, 2, { a: null }] } },
];
for (let i = 0; i < 40; i++) {
  docs.push({ text: `Document ${i}: ` + "The quick brown fox jumps over the lazy dog. ".repeat(1 + (i * 7) % 13), title: `title ${i}` });
}
fs.writeFileSync('corpus.jsonl', docs.map(d => JSON.stringify(d)).join('\n') + '\n');

function writeDataset(prefix, key) {
  const lengths = [], tokens = [], docIndex = [0];
  for (const d of docs) {
    const ids = encode(d[key]);
    if (ids.length > 0) {
      ids.push(EOD);
      lengths.push(ids.length);
      tokens.push(...ids);
    }
    docIndex.push(lengths.length);
  }
  const bin = Buffer.alloc(tokens.length * 2);
  tokens.forEach((t, i) => bin.writeUInt16LE(t, 2 * i));
  const n = lengths.length, m = docIndex.length;
  const idx = Buffer.alloc(34 + 12 * n + 8 * m);
  Buffer.from([0x4d, 0x4d, 0x49, 0x44, 0x49, 0x44, 0x58, 0, 0]).copy(idx, 0);
  idx.writeBigUInt64LE(1n, 9);
  idx.writeUInt8(8, 17);
  idx.writeBigUInt64LE(BigInt(n), 18);
  idx.writeBigUInt64LE(BigInt(m), 26);
  let pointer = 0n;
  lengths.forEach((len, i) => {
    idx.writeInt32LE(len, 34 + 4 * i);
    idx.writeBigInt64LE(pointer, 34 + 4 * n + 8 * i);
    pointer += BigInt(len * 2);
  });
  docIndex.forEach((d, k) => idx.writeBigInt64LE(BigInt(d), 34 + 12 * n + 8 * k));
  fs.writeFileSync(prefix + '.bin', bin);
  fs.writeFileSync(prefix + '.idx', idx);
}
writeDataset('gpt2_text_document', 'text');
writeDataset('gpt2_title_document', 'title');
