package org.megatronj.cli.evaluate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class DetokenizersTest {
    static final String WIKI = " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : "
            + "戦場のヴァルキュリア3 , lit . \" Valkyria of the Battlefield 3 \" ) , commonly referred to as Valkyria Chronicles"
            + " III outside Japan , is a tactical role @-@ playing video game . The game 's 1 @,@ 000 units ran at 3 @.@ 5 ° C"
            + " [ sic ] and { braces } with ' quoted words ' , players ' N items ! Really ? = = = Gameplay = = = \n";

    @Test
    void wikitextMatchesMegatronsPythonOutput() {
        // Expected text produced by Megatron's wikitext_detokenizer (Python 3) on the same input.
        String expected = " = Valkyria Chronicles III =\n\nSenjō no Valkyria 3: Unrecorded Chronicles (Japanese: 戦場のヴァルキュリア3,"
                + " lit. \"Valkyria of the Battlefield 3\"), commonly referred to as Valkyria Chronicles III outside Japan, is a"
                + " tactical role-playing video game. The game's 1,000 units ran at 3.5°C [sic] and {braces} with' quoted"
                + " words', players' 1 items! Really? === Gameplay ===\n";
        assertEquals(expected, Detokenizers.wikitext(WIKI));
    }

    @Test
    void ptbAndChoiceByPath() {
        assertEquals("it isn't $1 or #11 ", Detokenizers.ptb("it is n't $ 1 or # 1 N "));
        assertEquals("x ( y )", Detokenizers.forPath("/data/lambada_test.jsonl").apply("x ( y )"));
        assertEquals("x (y)", Detokenizers.forPath("/data/wikitext-103/wiki.test.tokens").apply("x ( y )"));
        assertEquals(null, Detokenizers.forPath("/data/other.txt"));
    }
}
