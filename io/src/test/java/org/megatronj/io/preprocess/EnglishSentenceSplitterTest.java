package org.megatronj.io.preprocess;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;

import org.junit.jupiter.api.Test;

/** The documented rule set, case by case (what NLTK Punkt's English model does on the same text is noted where it agrees). */
class EnglishSentenceSplitterTest {
    private final EnglishSentenceSplitter splitter = new EnglishSentenceSplitter(false);

    private void check(String text, String... sentences) {
        assertEquals(List.of(sentences), splitter.split(text));
    }

    @Test
    void endsAtPeriodsQuestionAndExclamationMarks() {
        check("This is one. This is two? Three! And four.", "This is one.", "This is two?", "Three!", "And four.");
        check("No break here", "No break here");
        check("", new String[0]);
        check("   ", new String[0]);
        check("Lower case next. is still a break in Punkt.", "Lower case next.", "is still a break in Punkt.");
    }

    @Test
    void closingQuotesAndBracketsStayWithTheSentence() {
        check("He said \"Stop.\" Then he left.", "He said \"Stop.\"", "Then he left.");
        check("(See the note.) The end.", "(See the note.)", "The end.");
        check("Really?!  Yes.", "Really?!", "Yes.");
    }

    @Test
    void abbreviationsInitialsAndNumbers() {
        check("Mr. Smith met Dr. Jones at 5 p.m. today.", "Mr. Smith met Dr. Jones at 5 p.m. today.");
        check("It was made by Acme Inc. The company grew.", "It was made by Acme Inc.", "The company grew.");
        check("J. R. R. Tolkien wrote it.", "J. R. R. Tolkien wrote it.");
        check("See e.g. the appendix.", "See e.g. the appendix.");
        check("The U.S. Army arrived.", "The U.S. Army arrived.");
        check("Chapter 3. The Return.", "Chapter 3.", "The Return.");
        check("Pi is 3.14 or so.", "Pi is 3.14 or so.");
        check("He counted to 3. then stopped.", "He counted to 3. then stopped.");
    }

    @Test
    void ellipsis() {
        check("Wait... what happened?", "Wait... what happened?");
        check("I wonder... The door opened.", "I wonder...", "The door opened.");
    }

    @Test
    void newlinesInsideSentencesStayAndBetweenSentencesGoUnlessKept() {
        check("Line one\ncontinues. Next\nsentence.\n\n", "Line one\ncontinues.", "Next\nsentence.");
        var keep = new EnglishSentenceSplitter(true);
        assertEquals(List.of("First.\n\n", "Second.\n", "Third."), keep.split("First.\n\nSecond.\nThird.\n"));
    }
}
