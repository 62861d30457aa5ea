fn main() {
    println!("docaxis");
}
