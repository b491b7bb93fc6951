namespace ClusterConv.Data.Tests;

public sealed class DatasetTests
{
    [Fact]
    public void A_dataset_exposes_images_labels_and_class_names()
    {
        var data = new Dataset("tiny", new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, new byte[] { 1, 0 }, 2, 2, ["a", "b"]);

        Assert.Equal((2, 2, 2, 4, 2), (data.Count, data.Height, data.Width, data.ImageSize, data.ClassCount));
        Assert.Equal([5, 6, 7, 8], data.Image(1).ToArray());
        Assert.Equal(1, data.Label(0));
        Assert.Equal([1, 1], data.ClassCounts());
        Assert.Equal("tiny: 2 images of 2x2, 2 classes", data.ToString());
    }

    [Fact]
    public void Pixels_that_do_not_match_the_label_count_are_rejected()
    {
        var error = Assert.Throws<ArgumentException>(() => new Dataset("x", new byte[7], new byte[2], 2, 2, ["a"]));

        Assert.StartsWith("2 labels need 8 pixel bytes of 2x2 images, got 7.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_label_beyond_the_class_names_is_rejected()
    {
        var error = Assert.Throws<ArgumentException>(() => new Dataset("x", new byte[2], new byte[] { 0, 2 }, 1, 1, ["a", "b"]));

        Assert.StartsWith("Label 2 at index 1 is out of range 0..1.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fashion_MNIST_and_MNIST_have_their_ten_class_names()
    {
        Assert.Equal(["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], DatasetInfo.FashionMnist.ClassNames);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), DatasetInfo.Mnist.ClassNames);
    }
}
