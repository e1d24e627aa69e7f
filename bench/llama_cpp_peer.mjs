// llama.cpp as a peer, through npm's node-llama-cpp 3.21.1 (which ships llama.cpp's prebuilt CPU library). Two uses:
//
//   node bench/llama_cpp_peer.mjs greedy MODEL.gguf '[ids]' N [TEXT]
//       prints {"greedy": the N greedy tokens after the prompt ids, "tokens": llama.cpp's tokenization of TEXT with the
//       file's tokenizer} as JSON (tests/Nabla.Tests/IO/GgufLlamaCppTests.cs)
//   node bench/llama_cpp_peer.mjs bench MODEL.gguf [--threads 2] [--prompt-tokens 512] [--decode-tokens 64] [--rounds 3]
//       prints one JSON line per round: {"prefill_tokens_per_s", "decode_tokens_per_s", ...} (B = 1, greedy)
//
// node-llama-cpp is looked up in $NODE_LLAMA_CPP_DIR, else $NABLA_TEST_DATA/node-llama-cpp, else
// ~/.cache/nabla-test-data/node-llama-cpp (tests/data/fetch-llama-cpp.sh installs it there).
import os from "node:os";
import path from "node:path";
import {pathToFileURL} from "node:url";

const dir = process.env.NODE_LLAMA_CPP_DIR
    || path.join(process.env.NABLA_TEST_DATA || path.join(os.homedir(), ".cache", "nabla-test-data"), "node-llama-cpp");
const entry = path.join(dir, "node_modules", "node-llama-cpp", "dist", "index.js");
let getLlama;
try {
    ({getLlama} = await import(pathToFileURL(entry).href));
} catch (e) {
    console.error(`llama_cpp_peer: cannot load node-llama-cpp from ${entry} (run tests/data/fetch-llama-cpp.sh): ${e.message}`);
    process.exit(3);
}

const [mode, modelPath, ...rest] = process.argv.slice(2);
const option = (name, fallback) => {
    const i = rest.indexOf(name);
    return i >= 0 ? Number(rest[i + 1]) : fallback;
};
if (!["greedy", "bench"].includes(mode) || !modelPath) {
    console.error("usage: llama_cpp_peer.mjs greedy MODEL.gguf '[ids]' N [TEXT] | bench MODEL.gguf [--threads T] [--prompt-tokens P] [--decode-tokens D] [--rounds R]");
    process.exit(2);
}
const threads = option("--threads", 2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: threads});
const model = await llama.loadModel({modelPath});

if (mode === "greedy") {
    const ids = JSON.parse(rest[0]);
    const count = Number(rest[1]);
    const context = await model.createContext({contextSize: Math.min(model.trainContextSize, 2048), threads});
    const sequence = context.getSequence();
    const out = [];
    if (count > 0)
        for await (const token of sequence.evaluate(ids, {temperature: 0})) {
            out.push(token);
            if (out.length >= count) break;
        }
    const text = rest[2];
    console.log(JSON.stringify({greedy: out, tokens: text === undefined ? null : model.tokenize(text)}));
} else {
    const promptTokens = option("--prompt-tokens", 512), decodeTokens = option("--decode-tokens", 64), rounds = option("--rounds", 3);
    const contextSize = promptTokens + decodeTokens + 8;
    if (contextSize > model.trainContextSize) {
        console.error(`llama_cpp_peer: ${promptTokens} + ${decodeTokens} tokens exceed the model's context of ${model.trainContextSize}`);
        process.exit(2);
    }
    const context = await model.createContext({contextSize, batchSize: promptTokens, threads: {ideal: threads, min: threads}});
    const vocabulary = model.tokens.bos ?? 0;
    // A fixed pseudo-random prompt of ordinary tokens (ids below 256 are byte tokens every GPT-2 vocabulary has).
    const prompt = Array.from({length: promptTokens}, (_, i) => (i * 7919 + vocabulary) % 256);
    for (let round = 0; round < rounds; round++) {
        const sequence = context.getSequence();
        let start = process.hrtime.bigint();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        const prefillSeconds = Number(process.hrtime.bigint() - start) / 1e9;
        await sequence.eraseContextTokenRanges([{start: 0, end: sequence.nextTokenIndex}]);
        // Decode: the first token comes after the (one-token) prompt; time the ones after it.
        let produced = 0, firstAt = 0n;
        start = process.hrtime.bigint();
        for await (const _ of sequence.evaluate([prompt[0]], {temperature: 0})) {
            if (produced++ === 0) firstAt = process.hrtime.bigint();
            if (produced > decodeTokens) break;
        }
        const decodeSeconds = Number(process.hrtime.bigint() - firstAt) / 1e9;
        console.log(JSON.stringify({
            peer: "llama.cpp", version: "node-llama-cpp 3.21.1", round, threads, prompt_tokens: promptTokens,
            prefill_tokens_per_s: promptTokens / prefillSeconds, decode_tokens: decodeTokens, decode_tokens_per_s: decodeTokens / decodeSeconds,
        }));
        sequence.dispose();
    }
}
await model.dispose();
await llama.dispose();
