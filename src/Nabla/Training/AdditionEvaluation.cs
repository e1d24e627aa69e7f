using Nabla.Data;
using Nabla.Models.Gpt2;

namespace Nabla.Training;

/// <summary>One held-out addition problem and the model's greedy answer.</summary>
public sealed record AdditionExample(string Question, string Answer, bool Correct, long Expected);

/// <summary>Exact-match accuracy on the addition task's held-out problems, and the first few answers.</summary>
public sealed record AdditionScore(double Accuracy, IReadOnlyList<AdditionExample> Examples);

public static class AdditionEvaluation
{
    /// <summary>Answers every held-out problem of <paramref name="data"/> by greedy decoding (stopping at the newline)
    /// and counts exact matches; the first <paramref name="examples"/> answers are returned for display.</summary>
    public static AdditionScore Score(Gpt2Model model, AdditionDataset data, int examples = 0)
    {
        bool wasTraining = model.Training;
        int correct = 0;
        var shown = new List<AdditionExample>();
        int newline = AdditionDataset.Encode('\n');
        foreach (var (a, b) in data.HeldOut)
        {
            var question = data.Question(a, b);
            var ids = Sampler.Generate(model, AdditionDataset.Encode(question),
                new SamplingOptions { Temperature = 0, MaxNewTokens = data.MaxDigits + 2 }, new Generator(0), stopToken: newline).ToList();
            var answer = AdditionDataset.Decode(ids);
            bool right = answer + "\n" == data.Answer(a, b);
            if (right) correct++;
            if (shown.Count < examples) shown.Add(new AdditionExample(question, answer, right, (long)a + b));
        }
        model.Train(wasTraining);
        return new AdditionScore((double)correct / data.HeldOut.Count, shown);
    }
}
