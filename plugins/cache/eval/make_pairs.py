#!/usr/bin/env python3
"""Builds pairs.jsonl, the cache's labelled evaluation set: prompt pairs that
should share an answer ("hit": the same question reworded) and look-alikes
that must not ("miss": one number, negation, name, quoted string, piece of
code, URL or opposite apart). Deterministic; rerun after editing the lists.
Each line: {"a":..., "b":..., "label":"hit"|"miss", "kind":...}."""
import json
import os

QUESTIONS = [
    "What is the capital of France?", "How do I reset my password?",
    "Explain how photosynthesis works.", "What are the symptoms of the flu?",
    "How do I boil an egg?", "What is the speed of light?",
    "Why is the sky blue?", "How does a refrigerator work?",
    "What is machine learning?", "How do I center a div in CSS?",
    "What is the difference between a list and a tuple in Python?",
    "How do vaccines work?", "What causes inflation?",
    "How do I change a flat tire?", "What is the meaning of life?",
    "How do I make a cup of tea?", "What is a black hole?",
    "How do I write a cover letter?", "What is the tallest mountain in the world?",
    "How do I learn to play the guitar?", "What does a project manager do?",
    "How do I improve my sleep?", "What is the boiling point of water?",
    "How do airplanes stay in the air?", "What is the history of the internet?",
    "How do I cancel my subscription?", "What is your refund policy?",
    "How do I contact customer support?", "Where can I find my invoice?",
    "How long does shipping take?",
]


def paraphrases(q):
    base = q.rstrip("?.")
    low = base[0].lower() + base[1:]
    out = [
        ("case_punct", q, base.lower()),
        ("case_punct", q, base.upper() + "?"),
        ("whitespace", q, "  " + q.replace(" ", "  ") + "  "),
        ("politeness", q, "Please, " + low + "?"),
        ("politeness", q, q + " Thanks!"),
        ("filler", q, "Can you tell me: " + low + "?"),
        ("punct", q, base + "??"),
    ]
    if base.startswith("What is "):
        out.append(("contraction", q, "What's " + base[8:] + "?"))
    if base.startswith("How do I "):
        out.append(("synonym", q, "How can I " + base[9:] + "?"))
    return out


NEAR_MISSES = [
    # numbers
    ("numbers", "What is 2+2?", "What is 2+3?"),
    ("numbers", "What is 12 * 12?", "What is 12 * 13?"),
    ("numbers", "What is 100 divided by 4?", "What is 100 divided by 5?"),
    ("numbers", "What is 10 - 3?", "What is 3 - 10?"),
    ("numbers", "Convert 5 km to miles.", "Convert 50 km to miles."),
    ("numbers", "Convert 3.5 kg to pounds.", "Convert 35 kg to pounds."),
    ("numbers", "What happened in 1969?", "What happened in 1968?"),
    ("numbers", "Give me 3 tips for studying.", "Give me 5 tips for studying."),
    ("numbers", "Give me three tips for studying.", "Give me four tips for studying."),
    ("numbers", "Write a 100 word story.", "Write a 200 word story."),
    ("numbers", "Is 17 a prime number?", "Is 21 a prime number?"),
    ("numbers", "What is 15% of 80?", "What is 25% of 80?"),
    ("numbers", "Set an alarm for 7:30.", "Set an alarm for 7:45."),
    ("numbers", "What is the square root of 144?", "What is the square root of 169?"),
    ("numbers", "How many days are in 3 weeks?", "How many days are in 4 weeks?"),
    ("numbers", "What was the weather on March 3?", "What was the weather on March 4?"),
    ("numbers", "Who won the 2018 World Cup?", "Who won the 2014 World Cup?"),
    ("numbers", "Multiply 7 by 8.", "Multiply 7 by 9."),
    ("numbers", "What is 2 to the power of 10?", "What is 2 to the power of 11?"),
    ("numbers", "Summarise chapter 1.", "Summarise chapter 2."),
    ("numbers", "What is the 1st law of thermodynamics?", "What is the 2nd law of thermodynamics?"),
    ("numbers", "Is -5 less than 3?", "Is 5 less than 3?"),
    ("numbers", "Round 3.14159 to two decimals.", "Round 3.14159 to three decimals."),
    ("numbers", "What is 1,000 times 3?", "What is 1,000 times 4?"),
    ("numbers", "How many seconds in 2 hours?", "How many seconds in 3 hours?"),
    ("numbers", "Translate the number 42 into Roman numerals.", "Translate the number 43 into Roman numerals."),
    ("numbers", "Book a table for 2 people.", "Book a table for 6 people."),
    ("numbers", "What is the tax on $500?", "What is the tax on $5000?"),
    ("numbers", "List the first 10 primes.", "List the first 20 primes."),
    ("numbers", "What is 9 squared?", "What is 8 squared?"),
    # negations
    ("negation", "Should I restart the server?", "Should I not restart the server?"),
    ("negation", "Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
    ("negation", "Why does my code work?", "Why doesn't my code work?"),
    ("negation", "Do cats like water?", "Don't cats like water?"),
    ("negation", "List foods with gluten.", "List foods without gluten."),
    ("negation", "Which planets have rings?", "Which planets have no rings?"),
    ("negation", "How do I keep my account active?", "How do I keep my account not active?"),
    ("negation", "Can I take ibuprofen with alcohol?", "Can I not take ibuprofen with alcohol?"),
    ("negation", "Is the store open on Sundays?", "Is the store never open on Sundays?"),
    ("negation", "Write a poem that rhymes.", "Write a poem that does not rhyme."),
    ("negation", "Is this function thread safe?", "Is this function not thread safe?"),
    ("negation", "Should I include a photo in my resume?", "Should I never include a photo in my resume?"),
    ("negation", "Can I use my phone on the plane?", "Can't I use my phone on the plane?"),
    ("negation", "Is coffee good for you?", "Is coffee not good for you?"),
    ("negation", "Describe a country with a monarchy.", "Describe a country without a monarchy."),
    ("negation", "Recommend a movie with violence.", "Recommend a movie without violence."),
    ("negation", "Is the answer yes?", "Is the answer no?"),
    ("negation", "Does the package include batteries?", "Does the package not include batteries?"),
    ("negation", "Will it rain tomorrow?", "Will it not rain tomorrow?"),
    ("negation", "Explain why the test passes.", "Explain why the test never passes."),
    ("negation", "Are dolphins mammals?", "Aren't dolphins mammals?"),
    ("negation", "Is this email spam?", "Is this email not spam?"),
    ("negation", "Should I water cactus daily?", "Should I not water cactus daily?"),
    ("negation", "Can dogs eat chocolate?", "Can dogs not eat chocolate?"),
    ("negation", "Sort the files, including hidden ones.", "Sort the files, excluding hidden ones."),
    # entities
    ("entities", "What is the capital of France?", "What is the capital of Germany?"),
    ("entities", "Who founded Apple?", "Who founded Microsoft?"),
    ("entities", "How tall is the Eiffel Tower?", "How tall is the Empire State Building?"),
    ("entities", "What does NASA do?", "What does ESA do?"),
    ("entities", "How do I update my iPhone?", "How do I update my iPad?"),
    ("entities", "When was Shakespeare born?", "When was Marlowe born?"),
    ("entities", "What is the population of Tokyo?", "What is the population of Osaka?"),
    ("entities", "Who is the CEO of Tesla?", "Who is the CEO of Ford?"),
    ("entities", "What language is spoken in Brazil?", "What language is spoken in Argentina?"),
    ("entities", "Summarise the plot of Hamlet.", "Summarise the plot of Macbeth."),
    ("entities", "What currency does Japan use?", "What currency does China use?"),
    ("entities", "How far is Mars from Earth?", "How far is Venus from Earth?"),
    ("entities", "What is Python used for?", "What is Rust used for?"),
    ("entities", "Who wrote Pride and Prejudice?", "Who wrote Sense and Sensibility?"),
    ("entities", "What time zone is London in?", "What time zone is Lisbon in?"),
    ("entities", "Is Amazon a good employer?", "Is Google a good employer?"),
    ("entities", "How do I install Docker on Ubuntu?", "How do I install Docker on Fedora?"),
    ("entities", "Compare PostgreSQL and MySQL.", "Compare PostgreSQL and SQLite."),
    ("entities", "What is the GDP of Canada?", "What is the GDP of Mexico?"),
    ("entities", "Tell me about Albert Einstein.", "Tell me about Niels Bohr."),
    ("entities", "What is the longest river in Africa?", "What is the longest river in Asia?"),
    ("entities", "Who painted the Mona Lisa?", "Who painted the Night Watch?"),
    ("entities", "How do I reach Paris from Berlin?", "How do I reach Paris from Munich?"),
    ("entities", "What is Kubernetes?", "What is Nomad?"),
    ("entities", "What is the weather in Madrid?", "What is the weather in Barcelona?"),
    # quoted strings
    ("quotes", 'Translate "good morning" to Spanish.', 'Translate "good night" to Spanish.'),
    ("quotes", "Is 'affect' a verb?", "Is 'effect' a verb?"),
    ("quotes", 'How many letters are in "banana"?', 'How many letters are in "bandana"?'),
    ("quotes", 'Spell "necessary" backwards.', 'Spell "neccessary" backwards.'),
    ("quotes", 'What does "carpe diem" mean?', 'What does "carpe noctem" mean?'),
    ("quotes", 'Find synonyms for "happy".', 'Find synonyms for "sad".'),
    ("quotes", 'Is "their" correct in this sentence?', 'Is "there" correct in this sentence?'),
    ("quotes", 'Rhyme with "cat".', 'Rhyme with "hat".'),
    ("quotes", 'Count the vowels in "education".', 'Count the vowels in "edification".'),
    ("quotes", 'Is "racecar" a palindrome?', 'Is "racecars" a palindrome?'),
    ("quotes", 'Pronounce “quinoa”.', 'Pronounce “quince”.'),
    ("quotes", 'Define the word "ephemeral".', 'Define the word "eternal".'),
    ("quotes", 'Capitalise "hello world".', 'Capitalise "hello there".'),
    ("quotes", 'Use "ubiquitous" in a sentence.', 'Use "ambiguous" in a sentence.'),
    ("quotes", 'What rhymes with "orange"?', 'What rhymes with "orchard"?'),
    # code
    ("code", "What does `ls -la` do?", "What does `ls -lh` do?"),
    ("code", "Explain `git rebase -i`.", "Explain `git reset --hard`."),
    ("code", "Why does `x = [] * 3` fail?", "Why does `x = [0] * 3` fail?"),
    ("code", "What does len(x) return?", "What does len(y) return?"),
    ("code", "Fix this: ```for i in range(10): print(i)```", "Fix this: ```for i in range(10) print(i)```"),
    ("code", "What is the type of my_var?", "What is the type of my_val?"),
    ("code", "How do I use os.path.join?", "How do I use os.path.split?"),
    ("code", "What is the output of `print(1 == 1.0)`?", "What is the output of `print(1 is 1.0)`?"),
    ("code", "Explain SELECT * FROM users WHERE id=1;", "Explain SELECT * FROM users WHERE id>1;"),
    ("code", "What does `chmod 755` do?", "What does `chmod 644` do?"),
    ("code", "What does `rm -rf build/` do?", "What does `rm -rf /` do?"),
    ("code", "Explain the regex `^a+$`.", "Explain the regex `^a*$`."),
    ("code", "What does arr.map(f) return?", "What does arr.filter(f) return?"),
    ("code", "Why is $HOME empty?", "Why is $PATH empty?"),
    ("code", "Is `a && b` short-circuiting?", "Is `a & b` short-circuiting?"),
    ("code", "Convert `let x = 5` to Python.", "Convert `const x = 5` to Python."),
    ("code", "What does `git push --force` do?", "What does `git push --force-with-lease` do?"),
    ("code", "Why does `import numpy as np` fail?", "Why does `import pandas as pd` fail?"),
    ("code", "What is std::move for?", "What is std::forward for?"),
    ("code", "How do I read config.yaml in Go?", "How do I read config.json in Go?"),
    # URLs
    ("urls", "Summarise https://example.com/post/1", "Summarise https://example.com/post/2"),
    ("urls", "Is www.paypal.com safe?", "Is www.paypa1.com safe?"),
    ("urls", "Send the report to alice@example.com.", "Send the report to bob@example.com."),
    ("urls", "What is on https://news.example.org today?", "What is on https://blog.example.org today?"),
    ("urls", "Check the status of http://localhost:8080/health", "Check the status of http://localhost:9090/health"),
    ("urls", "Is https://github.com/a/b a fork?", "Is https://github.com/a/c a fork?"),
    ("urls", "Translate the page at https://example.com/fr", "Translate the page at https://example.com/de"),
    ("urls", "Why does www.example.com redirect?", "Why does www.example.net redirect?"),
    ("urls", "Email support@shop.com about my order.", "Email sales@shop.com about my order."),
    ("urls", "Download https://example.com/file.zip", "Download https://example.com/file.exe"),
    ("urls", "Summarise https://en.wikipedia.org/wiki/Cat", "Summarise https://en.wikipedia.org/wiki/Dog"),
    ("urls", "Is ftp://files.example.com reachable?", "Is ftp://backup.example.com reachable?"),
    # opposites
    ("opposites", "What is the largest planet?", "What is the smallest planet?"),
    ("opposites", "Sort the list in ascending order.", "Sort the list in descending order."),
    ("opposites", "Convert this text to uppercase.", "Convert this text to lowercase."),
    ("opposites", "What is the highest score?", "What is the lowest score?"),
    ("opposites", "What happened before the war?", "What happened after the war?"),
    ("opposites", "What are the advantages of remote work?", "What are the disadvantages of remote work?"),
    ("opposites", "How do I encrypt a file?", "How do I decrypt a file?"),
    ("opposites", "How do I enable dark mode?", "How do I disable dark mode?"),
    ("opposites", "Which is the oldest city in Europe?", "Which is the newest city in Europe?"),
    ("opposites", "Find the maximum of the array.", "Find the minimum of the array."),
    ("opposites", "Is it better to buy or rent?", "Is it worse to buy or rent?"),
    ("opposites", "How do I add a user?", "How do I remove a user?"),
    ("opposites", "What is the first step?", "What is the last step?"),
    ("opposites", "Is the statement true?", "Is the statement false?"),
    ("opposites", "How do I import a CSV?", "How do I export a CSV?"),
    ("opposites", "When should I buy stocks?", "When should I sell stocks?"),
    ("opposites", "What is the cheapest flight?", "What is the most expensive flight?"),
    ("opposites", "How do I encode base64?", "How do I decode base64?"),
    ("opposites", "Which is faster, C or Python?", "Which is slower, C or Python?"),
    ("opposites", "Translate from English to German.", "Translate from German to English."),
]


def main():
    rows = []
    for q in QUESTIONS:
        for kind, a, b in paraphrases(q):
            rows.append({"a": a, "b": b, "label": "hit", "kind": kind})
    for kind, a, b in NEAR_MISSES:
        rows.append({"a": a, "b": b, "label": "miss", "kind": kind})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs.jsonl")
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    hits = sum(r["label"] == "hit" for r in rows)
    print("%d pairs: %d should hit, %d must not" % (len(rows), hits, len(rows) - hits))


if __name__ == "__main__":
    main()
