// Makes bert-vocab.txt (a small WordPiece vocabulary) and bert-fixtures.json: token ids of sample
// texts computed by an independent implementation, Hugging Face tokenizers (Rust, npm package
// tokenizers 0.13.3 with its linux-x64 binary) configured as BERT: BertNormalizer (clean text,
// CJK spacing, accent stripping and lower case for the uncased tokenizer), BertPreTokenizer,
// WordPiece with "##" and 200 characters per word at most (Megatron's bert_tokenization.py).
//
//   npm install --prefix /tmp/hf tokenizers@0.13.3 tokenizers-linux-x64-gnu@0.13.4-rc2
//   NODE_PATH=/tmp/hf/node_modules node make_wordpiece_fixtures.js
//
// The texts avoid the few characters where HF's BertNormalizer and Google's tokenization.py
// disagree (HF treats U+0085, U+2028 and unassigned/private-use code points differently).
const fs = require('fs');
const { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer } = require('tokenizers');

const words = `the of and to in a is that for it as was with be by on not he i this are or his from at which but
have an they you were her she there been one all we their has would when if so no will more other time some these
what only into them like can people new years many first then also could after two made most over my me said unto
shall lord god thee thou thy king israel son children land house day come go came went man men before upon great
quick brown fox jumps lazy dog hello world test sentence number document line water light earth heaven run
jump walk talk play work book read write token piece word text data model train language`.split(/\s+/);
const suffixes = ['s', 'ed', 'ing', 'ly', 'er', 'est', 'tion', 'ness', 'ment', 'able', 'ful', 'es', 'th', 'eth'];
const chars = 'abcdefghijklmnopqrstuvwxyz0123456789éèêàâçñüöäßøåæαβγδεζηθικλμνξοπρστυφχψωабвгдежзийклмнопрстуфхцчшщъыьэюя';
const cjk = '中文字国人日本語学生我是的天地';
const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const add = t => { if (!vocab.includes(t)) vocab.push(t); };
for (let c = 33; c < 127; c++) { const ch = String.fromCharCode(c); if (!/[A-Za-z0-9]/.test(ch)) add(ch); }
for (const ch of '—–“”‘’«»…¿¡·、。，！？') add(ch);
for (const w of words) add(w);
for (const w of ['The', 'God', 'Lord', 'Israel', 'Hello', 'World', 'I', 'A', 'And', 'In', 'Café', 'São']) add(w);
for (const s of suffixes) add('##' + s);
for (const ch of chars) { add(ch); add('##' + ch); }
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZÉÀÇÑÜÖÄ') { add(ch); add('##' + ch); }
for (const ch of cjk) add(ch);
for (const w of ['jumped', 'walking', 'σοφία', 'мир', 'привет', 'naïve', 'café']) add(w);
fs.writeFileSync('bert-vocab.txt', vocab.join('\n') + '\n');

const texts = [
  "Hello, world! The quick brown fox jumps over the lazy dog.",
  "In the beginning God created the heaven and the earth.",
  "And God said, Let there be light: and there was light.",
  "HELLO World. Café, São Paulo, naïve, CAFÉ, Naïve — résumé!",
  "Jumped, walking, running, talked, books, readers, quickest, kindness.",
  "Numbers: 1,234.56 and 2023-10-01; 42nd, 7th, 1st; 3.14159 ≈ π.",
  "Punctuation!!! ?? ... \"quotes\" 'single' (parens) [brackets] {braces} <angle> @#$%^&*_+=~`|\\/",
  "中文字符：我是学生。日本語の文章、天地人。",
  "Ελληνικά: σοφία Σοφία ΣΟΦΊΑ; русский: Привет мир, ПРИВЕТ МИР.",
  "Control\u0007chars\u0000and\u200bzero\u200dwidth\ufeffformat\u00adsoft hyphen.",
  "Tabs\tand\nnewlines\r\nand\u00a0non-breaking\u3000ideographic spaces.",
  "Unknown: xylophonezzz qwerty ñandú Ærøskøbing Ωmega 😀 emoji ©®™.",
  "a" + "b".repeat(198) + " " + "a" + "b".repeat(199) + " " + "a" + "b".repeat(200),
  "",
  "   ",
  "the the the THE The tHe",
];

async function encodeAll(lower) {
  const model = WordPiece.init(Object.fromEntries(vocab.map((t, i) => [t, i])),
      { unkToken: '[UNK]', continuingSubwordPrefix: '##', maxInputCharsPerWord: 200 });
  const tok = new Tokenizer(model);
  tok.setNormalizer(bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: lower, lowercase: lower }));
  tok.setPreTokenizer(bertPreTokenizer());
  const out = [];
  for (const text of texts) {
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    out.push({ text, ids: enc.getIds() });
  }
  return out;
}

(async () => {
  const fixtures = { generator: "tokenizers 0.13.3 (Hugging Face) via make_wordpiece_fixtures.js",
                     lowerCase: await encodeAll(true), cased: await encodeAll(false) };
  fs.writeFileSync('bert-fixtures.json', JSON.stringify(fixtures) + '\n');
})();
