// Learning path, step 2: a character-level GPT-2 trained from scratch with the library API, then sampled.
//
//   dotnet run -c Release --project examples/02-gpt-char                 # a short built-in text
//   dotnet run -c Release --project examples/02-gpt-char -- kjv.txt 2000  # any text file, 2000 steps
//
// The loop of examples/01 — ZeroGrad / Backward / Step — now run by Nabla's Trainer, which adds gradient
// clipping, the schedule, accumulation, validation, metrics.jsonl and crash-safe checkpoints (give it a run
// directory) and stops on NaN naming the op at fault. (`nabla train gpt` is this plus a progress bar and charts.)
using Nabla;
using Nabla.Data;
using Nabla.Models.Gpt2;
using Nabla.Optim;
using Nabla.Text;
using Nabla.Training;

var text = args.Length > 0 ? File.ReadAllText(args[0]) : string.Concat(Enumerable.Repeat(
    "In the beginning was the Word, and the Word was with God, and the Word was God.\n" +
    "The same was in the beginning with God. All things were made by him.\n", 40));
int steps = args.Length > 1 ? int.Parse(args[1]) : 300;

var tokenizer = CharTokenizer.FromText(text);
var tokens = tokenizer.Encode(text);
const int batch = 8, time = 64;
var loader = new TokenBatchLoader(tokens, batch, time, shuffleSeed: 1);

var config = new Gpt2Config { VocabSize = tokenizer.VocabSize, MaxSequenceLength = time, Layers = 2, Heads = 4, Channels = 64 };
var model = new Gpt2Model(config, new Generator(1));
var (decay, noDecay) = model.WeightDecayGroups();
var optimizer = new AdamW([new ParamGroup(decay, weightDecay: 0.1f), new ParamGroup(noDecay, weightDecay: 0f)], learningRate: 3e-3f);
var schedule = new CosineWithWarmup(optimizer, warmupSteps: 30, totalSteps: steps, minLearningRate: 3e-4f);
Console.WriteLine($"{tokens.Length:N0} characters, vocabulary {tokenizer.VocabSize}, model {model.ParameterCount:N0} parameters");

var trainer = new Trainer(model, (logits, targets) => Gpt2Model.Loss(logits, targets), loader, optimizer,
    new TrainerOptions { Steps = steps, ClipGradNorm = 1f }, schedule);     // batch i of the loader is a function of i alone
trainer.AfterStep += s =>
{
    if (s.Step % 50 == 1 || s.Step == steps) Console.WriteLine($"step {s.Step,4}: loss {s.Loss:F3}");
};
trainer.Train();

var prompt = tokenizer.Encode(text[..1]);
var sample = Sampler.Generate(model, prompt, new SamplingOptions { Temperature = 0.8f, MaxNewTokens = 200 }, new Generator(2));
Console.WriteLine("---\n" + tokenizer.Decode(prompt.Concat(sample)));
