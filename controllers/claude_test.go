package controllers

import "testing"

func TestQuestionFrom(t *testing.T) {
	cases := []struct{ result, last, want string }{
		{"Should I also update the docs?", "", "Should I also update the docs?"},
		{"", "Which branch do you mean?\n", "Which branch do you mean?"},
		{"Done. I changed two files.", "Anything else?", ""},
		{"I could not decide: **A or B?**", "", "I could not decide: **A or B?**"},
		{"Is it \"x\"?\"", "", "Is it \"x\"?\""},
		{"", "", ""},
		{"What? No. It works.", "", ""},
	}
	for _, c := range cases {
		if got := questionFrom(c.result, c.last); got != c.want {
			t.Errorf("questionFrom(%q, %q) = %q, want %q", c.result, c.last, got, c.want)
		}
	}
}
