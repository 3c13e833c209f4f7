namespace Keel.Idempotency.Tests;

public class IdempotencyKeyTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("f47ac10b-58cc-4372-a567-0e02b2c3d479")]
    [InlineData(" ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}")]
    public void Printable_ascii_keys_are_valid(string key)
    {
        Assert.True(IdempotencyKey.IsValid(key));
        Assert.Null(IdempotencyKey.DescribeProblem(key));
        IdempotencyKey.Validate(key);
    }

    [Fact]
    public void A_key_of_exactly_255_characters_is_valid_and_256_is_not()
    {
        Assert.True(IdempotencyKey.IsValid(new string('k', 255)));
        Assert.False(IdempotencyKey.IsValid(new string('k', 256)));
        var error = Assert.Throws<InvalidIdempotencyKeyException>(() => IdempotencyKey.Validate(new string('k', 256)));
        Assert.Contains("256 characters", error.Message);
        Assert.Contains("255", error.Message);
    }

    [Fact]
    public void An_empty_key_is_refused_with_a_reason()
    {
        var error = Assert.Throws<InvalidIdempotencyKeyException>(() => IdempotencyKey.Validate(""));
        Assert.Contains("empty", error.Message);
    }

    [Theory]
    [InlineData("abc\u00e9", 3, "U+00E9")]
    [InlineData("tab\there", 3, "U+0009")]
    [InlineData("\u007f", 0, "U+007F")]
    [InlineData("new\nline", 3, "U+000A")]
    [InlineData("emoji\ud83d\ude00", 5, "U+D83D")]
    public void Characters_outside_printable_ascii_are_refused_with_their_position(string key, int index, string codePoint)
    {
        Assert.False(IdempotencyKey.IsValid(key));
        var error = Assert.Throws<InvalidIdempotencyKeyException>(() => IdempotencyKey.Validate(key));
        Assert.Contains(codePoint, error.Message);
        Assert.Contains($"index {index}", error.Message);
        Assert.IsAssignableFrom<ArgumentException>(error);
    }

    [Fact]
    public void Exactly_the_characters_from_space_to_tilde_are_accepted()
    {
        for (var c = char.MinValue; ; c++)
        {
            var printable = c >= IdempotencyKey.MinChar && c <= IdempotencyKey.MaxChar;
            Assert.True(printable == IdempotencyKey.IsValid([c]), $"U+{(int)c:X4}");
            Assert.True(printable == IdempotencyKey.IsValid(['a', c, 'b']), $"U+{(int)c:X4} inside a key");
            if (c == char.MaxValue) break;
        }
    }
}
