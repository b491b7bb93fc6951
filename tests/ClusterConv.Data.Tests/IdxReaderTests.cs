namespace ClusterConv.Data.Tests;

public sealed class IdxReaderTests : IDisposable
{
    private readonly TempDirectory temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void An_uncompressed_image_file_reads_its_count_size_and_pixels()
    {
        var path = Idx.Write(temp.Path, "images", Idx.Images(3, 4, 5));

        var images = IdxReader.ReadImages(path);

        Assert.Equal((3, 4, 5), (images.Count, images.Rows, images.Columns));
        Assert.Equal(Idx.ImagePixels(3, 4, 5), images.Pixels);
    }

    [Fact]
    public void A_gzip_file_is_recognised_by_its_header_whatever_its_name()
    {
        var path = Idx.Write(temp.Path, "images-without-gz-suffix", Idx.Gzip(Idx.Images(3, 4, 5)));

        var images = IdxReader.ReadImages(path);

        Assert.Equal(Idx.ImagePixels(3, 4, 5), images.Pixels);
    }

    [Fact]
    public void An_uncompressed_file_named_gz_still_reads()
    {
        var path = Idx.Write(temp.Path, "labels.gz", Idx.Labels(1, 2, 3));

        Assert.Equal([1, 2, 3], IdxReader.ReadLabels(path, 10));
    }

    [Fact]
    public void Images_and_labels_load_into_one_dataset()
    {
        var images = Idx.Write(temp.Path, "i.gz", Idx.Gzip(Idx.Images(3, 4, 5)));
        var labels = Idx.Write(temp.Path, "l.gz", Idx.Gzip(Idx.Labels(7, 0, 9)));

        var data = IdxReader.Load(images, labels, "tiny", DatasetInfo.FashionMnist.ClassNames);

        Assert.Equal((3, 4, 5, 10), (data.Count, data.Height, data.Width, data.ClassCount));
        Assert.Equal(9, data.Label(2));
        Assert.Equal(Idx.Pixel(1, 2, 3), data.Image(1)[(2 * 5) + 3]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_truncated_image_file_says_how_many_bytes_the_header_promises_and_the_file_holds(bool gzip)
    {
        var raw = Idx.Images(3, 4, 4)[..50];
        var path = Idx.Write(temp.Path, "train-images-idx3-ubyte.gz", gzip ? Idx.Gzip(raw) : raw);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.StartsWith(path + ": ", error.Message, StringComparison.Ordinal);
        Assert.Contains("truncated: header says 3 images of 4x4 (64 bytes) but the", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("holds 50", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Trailing_bytes_after_the_declared_labels_are_an_error()
    {
        var path = Idx.Write(temp.Path, "labels", [.. Idx.Labels(1, 2, 3), 0, 0]);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadLabels(path, 10));

        Assert.Equal($"{path}: 2 trailing bytes: header says 3 labels (11 bytes) but the file holds 13", error.Message);
    }

    [Fact]
    public void A_wrong_magic_number_is_reported_with_the_expected_one()
    {
        var bytes = Idx.Images(2, 2, 2);
        bytes[0] = 0x50;
        bytes[1] = 0x4B;
        var path = Idx.Write(temp.Path, "images", bytes);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.Equal($"{path}: not an IDX file: magic number 0x504B0803, expected 0x00000803", error.Message);
    }

    [Fact]
    public void An_image_file_with_the_wrong_dimension_count_is_an_error()
    {
        var path = Idx.Write(temp.Path, "images", [.. Idx.Header(0x802, 2, 4), .. new byte[8]]);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.Equal($"{path}: has 2 dimension(s) (magic 0x00000802) but an image file needs 3 (count, rows, columns)", error.Message);
    }

    [Fact]
    public void A_label_file_given_as_images_is_recognised_as_such()
    {
        var path = Idx.Write(temp.Path, "t10k-labels-idx1-ubyte", Idx.Labels(1, 2));

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.Contains("this looks like a label file", error.Message, StringComparison.Ordinal);
        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_data_type_other_than_unsigned_byte_is_an_error()
    {
        var path = Idx.Write(temp.Path, "images", [.. Idx.Header(0x0D03, 1, 1, 1), 0, 0, 0, 0]);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.Equal($"{path}: IDX data type 0x0D (float32) is not supported: expected 0x08 (unsigned byte), magic 0x00000803", error.Message);
    }

    [Fact]
    public void Image_and_label_counts_that_differ_name_both_files()
    {
        var images = Idx.Write(temp.Path, "train-images-idx3-ubyte", Idx.Images(3, 2, 2));
        var labels = Idx.Write(temp.Path, "train-labels-idx1-ubyte", Idx.Labels(1, 2));

        var error = Assert.Throws<DataException>(() => IdxReader.Load(images, labels, "x", DatasetInfo.Mnist.ClassNames));

        Assert.Equal($"{labels}: holds 2 labels but {images} holds 3 images; the counts must agree", error.Message);
    }

    [Fact]
    public void A_label_out_of_range_names_its_value_and_index()
    {
        var labels = new byte[400];
        labels[345] = 12;
        var path = Idx.Write(temp.Path, "train-labels-idx1-ubyte.gz", Idx.Gzip(Idx.Labels(labels)));

        var error = Assert.Throws<DataException>(() => IdxReader.ReadLabels(path, 10));

        Assert.Equal($"{path}: label 12 at index 345 is out of range 0..9", error.Message);
    }

    [Fact]
    public void An_empty_file_is_reported_as_empty()
    {
        var path = Idx.Write(temp.Path, "train-images-idx3-ubyte.gz", []);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.Equal($"{path}: is empty (0 bytes)", error.Message);
    }

    [Fact]
    public void A_header_cut_short_is_reported()
    {
        var path = Idx.Write(temp.Path, "images", Idx.Images(1, 2, 2)[..9]);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.Equal($"{path}: truncated header: 3 dimension(s) need 16 header bytes but the file holds 9", error.Message);
    }

    [Fact]
    public void Corrupt_gzip_data_is_reported_as_such()
    {
        var gzip = Idx.Gzip(Idx.Images(2, 8, 8));
        for (var i = 10; i < gzip.Length - 8; i++)
        {
            gzip[i] = 0xFF;
        }

        var path = Idx.Write(temp.Path, "train-images-idx3-ubyte.gz", gzip);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.StartsWith($"{path}: corrupt gzip data: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gzip_file_cut_short_is_reported_as_truncated_or_corrupt()
    {
        var gzip = Idx.Gzip(Idx.Images(50, 28, 28));
        var path = Idx.Write(temp.Path, "train-images-idx3-ubyte.gz", gzip[..(gzip.Length / 2)]);

        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));

        Assert.StartsWith(path + ": ", error.Message, StringComparison.Ordinal);
        Assert.Matches("truncated: header says 50 images of 28x28 \\(39216 bytes\\) but the decompressed data holds \\d+|corrupt gzip data", error.Message);
    }

    [Fact]
    public void A_missing_file_is_reported_as_missing()
    {
        var path = temp.Sub("nothing-here.gz");

        var error = Assert.Throws<DataException>(() => IdxReader.ReadLabels(path, 10));

        Assert.Equal($"{path}: does not exist", error.Message);
    }

    [Fact]
    public void A_folder_given_as_a_file_is_reported()
    {
        var error = Assert.Throws<DataException>(() => IdxReader.ReadLabels(temp.Path, 10));

        Assert.Equal($"{temp.Path}: is a folder, not an IDX file", error.Message);
    }

    [Fact]
    public void A_folder_without_the_files_names_the_folder_and_each_missing_file()
    {
        Idx.WriteSet(temp.Path);
        File.Delete(Path.Combine(temp.Path, "t10k-labels-idx1-ubyte.gz"));

        var error = Assert.Throws<DataException>(() => IdxReader.LoadSplits(temp.Path, DatasetInfo.FashionMnist));

        Assert.Equal($"{temp.Path}: data folder has no t10k-labels-idx1-ubyte.gz (also accepted uncompressed, without .gz)", error.Message);
    }

    [Fact]
    public void A_folder_of_uncompressed_files_loads_both_splits()
    {
        Idx.WriteSet(temp.Path, gzip: false);

        var splits = IdxReader.LoadSplits(temp.Path, DatasetInfo.Mnist);

        Assert.Equal((12, 5), (splits.Train.Count, splits.Test.Count));
        Assert.Equal(("MNIST train", "MNIST test"), (splits.Train.Name, splits.Test.Name));
        Assert.Equal("7", splits.Train.ClassNames[7]);
    }
}
