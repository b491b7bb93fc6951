namespace ClusterConv.Data;

/// <summary>What an IDX image set is: its name (for logs and data set names) and its class names (whose count bounds the labels).</summary>
public sealed record DatasetInfo(string Name, IReadOnlyList<string> ClassNames)
{
    /// <summary>Zalando's Fashion-MNIST: 28x28 article images, 60000 train and 10000 test.</summary>
    public static DatasetInfo FashionMnist { get; } = new(
        "Fashion-MNIST",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]);

    /// <summary>LeCun's handwritten digits, in the same file layout as Fashion-MNIST.</summary>
    public static DatasetInfo Mnist { get; } = new("MNIST", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);

    public int ClassCount => ClassNames.Count;
}
